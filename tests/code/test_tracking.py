"""MLflow against a real SQLite store (the session's `mlflow_store`): what a training run records,
the pyfunc model, URIs in Classifier.load, promotion through the registry, and the search."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from typer.testing import CliRunner

from ticket_nlp import Classifier
from ticket_nlp.cli import app
from ticket_nlp.config import CHAMPION_ALIAS, LABELS, REGISTERED_MODEL
from ticket_nlp.evaluate import evaluate
from ticket_nlp.experiment import ConfigError, ExperimentConfig, load_config
from ticket_nlp.model import DEFAULT_PARAMS, ArtifactError
from ticket_nlp.train import train

from ..conftest import ROOT

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="session")
def worse_run(corpus, tmp_path_factory, mlflow_store) -> tuple[str, Classifier]:
    """A deliberately worse model: the same pipeline trained on 300 train rows."""
    from ticket_nlp.tracking import log_training_run

    train_rows = [i for i, s in enumerate(corpus.splits) if s == "train"][::30][:300]
    others = [i for i, s in enumerate(corpus.splits) if s != "train"]
    small = corpus.subset(train_rows + others)
    clf = train(small, compare=False, log=lambda *a: None)
    out = clf.save(tmp_path_factory.mktemp("worse"))
    return log_training_run(clf, small, out, ExperimentConfig(name="worse-300-rows")), clf


def test_run_records_config_data_metrics_and_artifacts(tracked_run, clf, corpus):
    run = mlflow.get_run(tracked_run)
    params, metrics = run.data.params, run.data.metrics
    # the full config: every pipeline param and both threshold targets
    assert set(DEFAULT_PARAMS) <= set(params)
    assert params["review_precision"] == "0.95" and params["config_name"] == "default"
    assert params["word_ngrams"] == "[1, 2]" and params["classifier"] == "linearsvc"
    # the dataset, with its hash and source
    [ds] = run.inputs.dataset_inputs
    assert ds.dataset.digest == corpus.sha256[:16] and "tickets.csv" in ds.dataset.source
    assert run.data.tags["data_sha256"] == corpus.sha256
    # metrics equal what evaluate() says of the same model on the same split
    assert metrics["valid_macro_f1"] == pytest.approx(evaluate(clf, corpus.split("valid"))["macro_f1"])
    for split in ("valid", "test", "extra"):
        for name in ("macro_f1", "coverage", "calibration_error", "mismatch_precision", "mismatch_recall"):
            assert 0 <= metrics[f"{split}_{name}"] <= 1, (split, name)
        for lab in LABELS:
            assert {f"{split}_{k}_{lab}" for k in ("precision", "recall", "f1")} <= set(metrics)
    assert metrics["train_seconds"] > 0 and metrics["throughput_texts_per_s"] > 100
    # artifacts
    local = Path(mlflow.artifacts.download_artifacts(run_id=tracked_run, artifact_path=""))
    for fig in ("confusion_valid", "confusion_test", "reliability_valid"):
        assert (local / "figures" / f"{fig}.png").read_bytes().startswith(PNG)
    per_class = pd.read_csv(local / "evaluation" / "per_class_valid.csv")
    assert list(per_class["label"]) == list(LABELS) and {"precision", "recall", "f1"} <= set(per_class.columns)
    wrong = pd.read_csv(local / "evaluation" / "misclassified_valid.csv")
    valid_report = evaluate(clf, corpus.split("valid"))
    assert len(wrong) == round(valid_report["rows"] * (1 - valid_report["accuracy"]))
    assert (wrong["label"] != wrong["predicted"]).all() and "product_category" in wrong.columns
    assert (local / "claimed_reasons" / "reasons.yaml").read_text(encoding="utf-8").strip()
    assert json.loads((local / "metadata.json").read_text(encoding="utf-8"))["version"] == clf.version


def test_pyfunc_round_trip_equals_classifier_predict(tracked_run, clf, corpus):
    from ticket_nlp.pyfunc import OUTPUT_COLUMNS, predictions_frame

    model = mlflow.pyfunc.load_model(f"runs:/{tracked_run}/model")
    sig = model.metadata.signature
    assert sig.inputs.input_names() == ["text", "claimed_reason", "product"]
    assert sig.outputs.input_names() == OUTPUT_COLUMNS
    test = corpus.split("test").subset(range(0, 2000, 25))
    claimed = [c if i % 3 else None for i, c in enumerate(test.claimed)]
    products = [p if i % 2 else None for i, p in enumerate(test.products)]
    got = model.predict(pd.DataFrame({"text": test.texts, "claimed_reason": claimed, "product": products}))
    want = predictions_frame(clf.predict(test.texts, claimed, products))
    pd.testing.assert_frame_equal(got, want)
    assert (got["mismatch"] == "mismatch").any() and (got["claimed_label"] != "").any() and got["claimed_label"].notna().all()
    # claimed_reason is optional; explain=False drops the evidence only
    alone = model.predict(pd.DataFrame({"text": test.texts[:5]}), params={"explain": False})
    assert list(alone["label"]) == list(want["label"][:5]) and set(alone["evidence"]) == {"[]"}
    assert set(alone["mismatch"]) == {"not_claimed"}


def test_served_input_example_scores(tracked_run):
    """What `mlflow models serve` does with a request: the logged serving example validates and scores."""
    from mlflow.models import validate_serving_input

    local = mlflow.artifacts.download_artifacts(f"runs:/{tracked_run}/model")
    example = (Path(local) / "serving_input_example.json").read_text(encoding="utf-8")
    out = validate_serving_input(f"runs:/{tracked_run}/model", example)
    assert list(out["label"]) == ["quality_defect", "size_exchange"]
    assert out["mismatch"][0] == "mismatch" and out["severity"][0] == "high"


def test_classifier_loads_run_uris(tracked_run, clf, monkeypatch):
    loaded = Classifier.load(f"runs:/{tracked_run}/model")
    assert loaded.version == clf.version
    monkeypatch.setenv("TICKET_NLP_MODEL", f"runs:/{tracked_run}/model")  # how the API and batch default
    assert Classifier.load().version == clf.version
    assert [p.label for p in loaded.predict(["袖口开线了", "快递一周才到"])] == ["quality_defect", "logistics"]
    with pytest.raises(ArtifactError, match="cannot fetch model"):
        Classifier.load("runs:/0123456789abcdef0123456789abcdef/model")


def test_promotion_refuses_worse_accepts_better_and_force_is_tagged(tracked_run, worse_run, clf, corpus):
    from ticket_nlp.registry import promote

    client = mlflow.MlflowClient()
    worse_id, worse_clf = worse_run
    sets = {"test": corpus.split("test")}
    # first the worse model: with no champion yet it becomes one
    first = promote(worse_id, sets)
    assert first.promoted and first.champion_version is None
    # the better model beats it on the same set and takes the alias
    better = promote(tracked_run, sets)
    rows = {(r["set"], r["metric"]): r for r in better.table}
    assert better.promoted and not better.forced and rows[("test", "macro_f1")]["delta"] > 0
    assert str(client.get_model_version_by_alias(REGISTERED_MODEL, CHAMPION_ALIAS).version) == better.version
    # the worse one again: refused, alias unchanged, the CLI says so with a side-by-side table
    result = runner.invoke(app, ["promote", worse_id])
    assert result.exit_code == 1, result.output
    assert "not promoted" in result.output and "macro_f1" in result.output and "champion" in result.output
    assert str(client.get_model_version_by_alias(REGISTERED_MODEL, CHAMPION_ALIAS).version) == better.version
    assert Classifier.load(f"models:/{REGISTERED_MODEL}@{CHAMPION_ALIAS}").version == clf.version
    # --force moves it and the version says it was forced
    result = runner.invoke(app, ["promote", worse_id, "--force"])
    assert result.exit_code == 0, result.output
    mv = client.get_model_version_by_alias(REGISTERED_MODEL, CHAMPION_ALIAS)
    assert str(mv.version) == first.version and mv.tags.get("promoted_by_force") == "true"
    assert Classifier.load(f"models:/{REGISTERED_MODEL}@{CHAMPION_ALIAS}").version == worse_clf.version
    # and the better model takes it back, untagged
    back = promote(tracked_run, sets)
    assert back.promoted and not back.forced and back.version == better.version
    assert "promoted_by_force" not in client.get_model_version(REGISTERED_MODEL, back.version).tags
    assert Classifier.load(f"models:/{REGISTERED_MODEL}@{CHAMPION_ALIAS}").version == clf.version


def test_score_accepts_a_model_uri(tracked_run, tmp_path):
    src = tmp_path / "export.csv"
    src.write_text("问题描述,申请原因\n袖口开线了,七天无理由退货\n快递一周才到,\n", encoding="utf-8")
    result = runner.invoke(app, ["score", str(src), "-o", str(tmp_path / "out.csv"),
                                 "--model", f"runs:/{tracked_run}/model", "--workers", "1"])
    assert result.exit_code == 0, result.output
    out = pd.read_csv(tmp_path / "out.csv", encoding="utf-8-sig")
    assert list(out["tn_label"]) == ["quality_defect", "logistics"] and out["tn_mismatch"][0] == "mismatch"


def test_tune_nests_one_run_per_grid_point(corpus):
    from ticket_nlp.tune import best_config_yaml, tune

    small = corpus.subset(range(0, len(corpus), 6))
    cfg = ExperimentConfig(name="tiny-grid", params={"use_chars": False}, grid={"C": [0.05, 1.0]})
    result = tune(small, cfg, log=lambda *a: None)
    assert len(result.rows) == 2 and result.best["valid_macro_f1"] == max(r["valid_macro_f1"] for r in result.rows)
    children = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}'",
                                  output_format="list")
    assert {c.info.run_id for c in children} == {r["run_id"] for r in result.rows}
    assert {c.data.params["C"] for c in children} == {"0.05", "1.0"}
    parent = mlflow.get_run(result.parent_run_id)
    assert parent.data.metrics["best_valid_macro_f1"] == pytest.approx(result.best["valid_macro_f1"])
    assert parent.data.tags["best_run_id"] == result.best["run_id"]
    best = load_config_text(best_config_yaml(cfg, result.best))
    assert best["params"]["C"] == result.best["params"]["C"] and best["params"]["use_chars"] is False


def load_config_text(text: str) -> dict:
    import yaml

    return yaml.safe_load(text)


def test_train_cli_with_config_label_map_and_flag_precedence(corpus_rows, tmp_path):
    zh = {"quality_defect": "质量", "size_exchange": "尺码", "logistics": "快递", "no_reason_return": "不想要",
          "other": "其它"}
    export = tmp_path / "team.csv"
    pd.DataFrame({"买家留言": [r["description"] for r in corpus_rows[::13][:900]],
                  "人工标注": [zh[r["label"]] for r in corpus_rows[::13][:900]]}).to_csv(export, index=False)
    cfg = tmp_path / "team.yaml"
    cfg.write_text("name: team\nparams: {use_chars: false, C: 0.5}\n"
                   "data:\n  text_col: not_a_column\n  label_col: 人工标注\n"
                   "  label_map: {质量: quality_defect, 尺码: size_exchange, 快递: logistics, 不想要: no_reason_return}\n",
                   encoding="utf-8")
    # one label (其它) is not mapped: every such row is reported, nothing trains
    result = runner.invoke(app, ["train", "--config", str(cfg), "--data", str(export), "--text-col", "买家留言",
                                 "--out", str(tmp_path / "m")])
    assert result.exit_code == 2 and "其它" in result.output and "line " in result.output
    # mapped through the config plus one CLI flag; --text-col overrides the config's column
    result = runner.invoke(app, ["train", "--config", str(cfg), "--data", str(export), "--text-col", "买家留言",
                                 "--label-map", "其它=other", "--out", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    run_id = result.output.split("MLflow run ")[1].split()[0]
    params = mlflow.get_run(run_id).data.params
    assert params["config_name"] == "team" and params["use_chars"] == "False" and params["C"] == "0.5"
    assert params["variant"] == "given params"  # a config run is not re-chosen by the variant comparison
    meta = json.loads((tmp_path / "m" / "metadata.json").read_text(encoding="utf-8"))
    assert meta["params"]["use_chars"] is False and meta["data"]["rows"] == 900


def test_no_track_logs_nothing(corpus_rows, tmp_path):
    before = len(mlflow.search_runs(search_all_experiments=True, output_format="list"))
    few = tmp_path / "few.csv"
    pd.DataFrame({"text": [r["description"] for r in corpus_rows[::20][:600]],
                  "label": [r["label"] for r in corpus_rows[::20][:600]]}).to_csv(few, index=False)
    result = runner.invoke(app, ["train", "--data", str(few), "--no-compare", "--no-track", "--out", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert "MLflow run" not in result.output
    assert len(mlflow.search_runs(search_all_experiments=True, output_format="list")) == before


@pytest.mark.parametrize("text, message", [
    ("params: {C: 1, chars: true}\n", "unknown key(s) ['chars']"),
    ("thresholds: {review_precision: 1.5}\n", "review_precision"),
    ("grid: {C: 1}\n", "grid.C must be a non-empty list"),
    ("modle: x\n", "unknown key(s) ['modle']"),
])
def test_bad_config_is_refused_with_the_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
                       .replace(")", r"\)")):
        load_config(path)


def test_shipped_configs_are_valid_and_differ():
    configs = [load_config(p) for p in sorted((ROOT / "configs").glob("*.yaml"))]
    assert len(configs) >= 4
    trained = [c for c in configs if not c.grid]
    assert len({json.dumps(c.flat(), sort_keys=True, default=str) for c in trained}) == len(trained)
    assert load_config(ROOT / "configs" / "default.yaml").flat() == ExperimentConfig(
        source=str(ROOT / "configs" / "default.yaml")).flat() | {"config_name": "default"}


def test_pyfunc_input_never_guesses_the_text_column():
    import pandas as pd

    from ticket_nlp.pyfunc import _inputs

    with pytest.raises(ValueError, match="'text' column"):
        _inputs(pd.DataFrame({"claimed_reason": ["质量问题"], "note": ["x"]}))
    texts, claimed, products = _inputs(pd.DataFrame({"text": ["袖口开线", pd.NA, None],
                                                     "claimed_reason": [pd.NA, float("nan"), "质量问题"]}))
    assert texts == ["袖口开线", "", ""] and claimed == [None, None, "质量问题"] and products is None
    assert _inputs(pd.DataFrame({"text": ["太小了"], "product": ["苹果"]}))[2] == ["苹果"]
    assert _inputs(pd.DataFrame({"0": ["鞋小了"]}))[0] == ["鞋小了"]  # one unnamed column is the texts
