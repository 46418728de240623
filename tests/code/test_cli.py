"""The ticket-nlp command as a user meets it."""

from __future__ import annotations

import json

import openpyxl
from typer.testing import CliRunner

from ticket_nlp.cli import app

runner = CliRunner()


def test_predict_readable_and_json(model_dir):
    result = runner.invoke(app, ["predict", "衣服袖口开线了", "--claimed", "七天无理由退货", "--model", str(model_dir)])
    assert result.exit_code == 0, result.output
    assert "quality_defect" in result.output and "mismatch" in result.output
    result = runner.invoke(app, ["predict", "穿着偏大，想换小一码", "--json", "--model", str(model_dir)])
    row = json.loads(result.output)
    assert row["label"] == "size_exchange" and row["mismatch"]["status"] == "not_claimed"
    assert row["model_version"]


def test_missing_model_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["predict", "太大了", "--model", str(tmp_path)])
    assert result.exit_code == 2 and "ticket-nlp train" in result.output


def test_evaluate_realdev_format(model_dir, tmp_path):
    dev = tmp_path / "dev.tsv"
    dev.write_text("id\tproduct\ttext\tprimary\tsecondary\tclaimed\texpect_mismatch\n"
                   "a\t衣服\t袖口开线了\tquality_defect\t\t七天无理由退换货\t1\n"
                   "b\t衣服\t太大了换小一码\tsize_exchange\t\t尺码不合适\t0\n"
                   "c\t水果\t快递一周才到\tlogistics\t\t质量问题\t1\n", encoding="utf-8")
    result = runner.invoke(app, ["evaluate", "--data", str(dev), "--model", str(model_dir), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["rows"] == 3 and 0 <= report["macro_f1"] <= 1 and "mismatch" in report


def test_train_on_a_team_export(corpus_rows, tmp_path):
    book = openpyxl.Workbook()
    book.active.append(["工单", "买家留言", "人工标注"])
    zh = {"quality_defect": "质量问题", "size_exchange": "尺码/换货", "logistics": "物流问题",
          "no_reason_return": "七天无理由", "other": "其他"}
    for i, r in enumerate(corpus_rows[::13][:900]):
        book.active.append([i, r["description"], zh[r["label"]]])
    book.save(tmp_path / "team.xlsx")
    out = tmp_path / "model"
    result = runner.invoke(app, ["train", "--data", str(tmp_path / "team.xlsx"), "--text-col", "买家留言",
                                 "--label-col", "人工标注", "--out", str(out), "--no-compare"])
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "metadata.json").read_text(encoding="utf-8"))
    assert meta["data"]["rows"] == 900 and meta["data"]["train"] > 500


def test_train_reports_bad_labels(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\n好,other\n坏,质量\n", encoding="utf-8")
    result = runner.invoke(app, ["train", "--data", str(bad), "--out", str(tmp_path / "m")])
    assert result.exit_code == 2 and "line 3" in result.output and "--label-map" in result.output


def test_train_says_when_a_label_has_too_few_rows(tmp_path):
    few = tmp_path / "few.csv"
    few.write_text("text,label\n" + "".join(f"袖口开线{i},quality_defect\n太大了{i},size_exchange\n" for i in range(30))
                   + "快递慢,logistics\n不想要,no_reason_return\n垃圾,other\n", encoding="utf-8")
    result = runner.invoke(app, ["train", "--data", str(few), "--out", str(tmp_path / "m"), "--no-compare"])
    assert result.exit_code == 2 and "too few" in result.output


def test_eval_files_cannot_take_a_split_name_or_each_others(tmp_path):
    """`--eval x/test.tsv` would overwrite the test split's metrics in the run (and in promote)."""
    for name in ("valid", "test"):
        f = tmp_path / f"{name}.csv"
        f.write_text("description,label\n袖口开线了,quality_defect\n", encoding="utf-8")
        result = runner.invoke(app, ["train", "--no-track", "--eval", str(f), "--out", str(tmp_path / "m")])
        assert result.exit_code == 2 and "is taken" in result.output
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    for d in (a, b):
        (d / "real.csv").write_text("description,label\n袖口开线了,quality_defect\n", encoding="utf-8")
    result = runner.invoke(app, ["train", "--no-track", "--eval", str(a / "real.csv"), "--eval", str(b / "real.csv")])
    assert result.exit_code == 2 and "is taken" in result.output
    assert not (tmp_path / "m").exists()  # refused before training
