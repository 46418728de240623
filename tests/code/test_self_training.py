"""Self-training on a team's own unlabelled tickets (``ticket-nlp train --unlabelled``)."""

from __future__ import annotations

import json
import re

import mlflow
from typer.testing import CliRunner

from ticket_nlp.batch import ExportTexts, read_export_texts
from ticket_nlp.cli import app
from ticket_nlp.config import LABELS
from ticket_nlp.data import load_labelled
from ticket_nlp.train import ensure_splits, pseudo_label

runner = CliRunner()


def test_pseudo_labels_are_the_confident_predictions_only(clf, corpus):
    texts = corpus.split("test").texts[:400]
    products = corpus.split("test").products[:400]
    proba = clf.predict_proba(texts, products)
    chosen_texts, chosen_labels = pseudo_label(clf, ExportTexts(texts, products, "x", "", {}), confidence=0.9)
    sure = proba.max(axis=1) >= 0.9
    assert 0 < len(chosen_texts) < len(texts)
    assert chosen_texts == [t for t, s in zip(texts, sure, strict=True) if s]
    assert chosen_labels == [LABELS[i] for i in proba[sure].argmax(axis=1)]


def test_export_texts_skip_what_cannot_be_scored_and_count_it(tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes("订单编号,商品名称,买家退款说明\n1,连衣裙,袖口开线了\n2,苹果,\n3,手机,#N/A\n4,,快递一直没到\n"
                     .encode("gbk"))
    export = read_export_texts(path)
    assert export.texts == ["袖口开线了", "快递一直没到"]
    assert export.products == ["连衣裙", None]
    assert export.skipped == {"empty": 1, "not_text": 1}


def test_train_with_unlabelled_tickets(corpus_rows, tmp_path):
    team = tmp_path / "team.csv"
    rows = corpus_rows[::13][:900]
    with open(team, "w", encoding="utf-8") as f:
        f.write("description,product_category,label\n")
        f.writelines(f'"{r["description"]}",{r["product_category"]},{r["label"]}\n' for r in rows)
    labelled = ensure_splits(load_labelled(team))
    held_out = labelled.split("valid").texts[0]
    pool = [held_out] + [r["description"] for r in corpus_rows[5::13][:600]] + ["", "   "]
    tickets = tmp_path / "tickets.csv"
    with open(tickets, "w", encoding="utf-8") as f:
        f.write("退款编号,买家退款说明\n")
        f.writelines(f'{i},"{text}"\n' for i, text in enumerate(pool))
    out = tmp_path / "model"
    result = runner.invoke(app, ["train", "--data", str(team), "--out", str(out), "--no-compare",
                                 "--unlabelled", str(tickets)])
    assert result.exit_code == 0, result.output
    st = json.loads((out / "metadata.json").read_text(encoding="utf-8"))["self_training"]
    run_id = re.search(r"MLflow run (\w+)", result.output).group(1)
    params = mlflow.MlflowClient().get_run(run_id).data.params
    assert params["self_training_added"] == str(st["added"]) and params["self_training_source"] == str(tickets)
    assert st["rows"] == 601 and st["skipped"] == {"empty": 2}
    assert st["held_out_dropped"] >= 1  # the valid-split text is never trained on
    assert 0 < st["added"] <= 600 and sum(st["added_per_label"].values()) == st["added"]
    assert st["confidence"] == 0.9 and st["weight"] == 0.5
    assert "self-training:" in result.output


def test_unlabelled_export_without_a_description_column_is_a_clear_error(corpus_rows, tmp_path):
    team = tmp_path / "team.csv"
    with open(team, "w", encoding="utf-8") as f:
        f.write("description,label\n")
        f.writelines(f'"{r["description"]}",{r["label"]}\n' for r in corpus_rows[::40][:500])
    tickets = tmp_path / "tickets.csv"
    tickets.write_text("编号,金额\n1,30\n", encoding="utf-8")
    result = runner.invoke(app, ["train", "--data", str(team), "--out", str(tmp_path / "m"), "--no-compare",
                                 "--no-track", "--unlabelled", str(tickets)])
    assert result.exit_code == 2 and "no description column" in " ".join(result.output.split())


def test_weights_reach_the_classifier(corpus):
    """The pseudo-labelled rows count at their weight: weight 0 fits the same model as none at all."""
    from ticket_nlp.train import fit_variant

    train = corpus.split("train").subset(range(1500))
    extra = (corpus.split("valid").texts[:300], corpus.split("valid").labels[:300])
    params = {"calibration_cv": 3, "min_df": 1}
    plain, _ = fit_variant(train, params)
    zero, _ = fit_variant(train, params, extra, pseudo_weight=0.0)
    half, _ = fit_variant(train, params, extra, pseudo_weight=0.5)
    probe = corpus.split("test").texts[:200]
    # weight 0 still adds the texts to the vocabulary and idf, so a few decisions may move; weight
    # 0.5 also trains on them
    moved = lambda model: (model.predict(probe) != plain.predict(probe)).mean()  # noqa: E731
    assert moved(zero) < moved(half)
