"""The artifact contract: metadata with a sha256, and a load that refuses changed or foreign files."""

from __future__ import annotations

import json
import pickle
import shutil

import pytest

from ticket_nlp import Classifier
from ticket_nlp.config import LABELS
from ticket_nlp.model import ArtifactError


def test_metadata_records_how_the_model_was_made(model_dir):
    meta = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))
    assert meta["labels"] == list(LABELS)
    assert len(meta["artifact_sha256"]) == 64
    assert len(meta["data"]["sha256"]) == 64
    assert set(meta["thresholds"]["review"]) == set(LABELS)
    assert 0 < meta["thresholds"]["mismatch"] < 1
    assert {"valid", "test"} <= set(meta["metrics"])
    assert {"scikit_learn", "numpy", "python", "ticket_nlp"} <= set(meta["versions"])


def test_changed_artifact_is_refused(model_dir, tmp_path):
    copy = tmp_path / "m"
    shutil.copytree(model_dir, copy)
    with open(copy / "model.joblib", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ArtifactError, match="does not match"):
        Classifier.load(copy)


def test_foreign_pickle_is_refused_before_unpickling(model_dir, tmp_path):
    copy = tmp_path / "m"
    shutil.copytree(model_dir, copy)

    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled!')",))

    (copy / "model.joblib").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(ArtifactError):
        Classifier.load(copy)


def test_missing_model_says_how_to_make_one(tmp_path):
    with pytest.raises(ArtifactError, match="ticket-nlp train"):
        Classifier.load(tmp_path / "nothing")


def test_round_trip_predicts_the_same(clf, tmp_path):
    texts = ["袖口开线了", "太大了换小一码", "快递一周没到"]
    again = Classifier.load(clf.save(tmp_path / "again"))
    assert [p.to_dict() for p in again.predict(texts)] == [p.to_dict() for p in clf.predict(texts)]


def test_to_dict_is_every_field_of_the_prediction(clf):
    """``Prediction.to_dict`` is written out by hand for speed; it must stay ``asdict``."""
    from dataclasses import asdict

    for p in clf.predict(["收到就发现袖口开线了", "鞋子偏小", "？"], ["七天无理由退货", None, "质量问题"]):
        assert p.to_dict() == asdict(p)
