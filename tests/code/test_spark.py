"""Spark engine: the same input scored by the local and Spark engines gives equal outputs, row by row,
with the same statuses for bad rows and the same summary. Real Spark in local mode (marked ``spark``:
`make test` runs these, a bare `pytest` skips them); the environment checks need no JVM."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from ticket_nlp.batch import EXTRA_COLUMN, OUTPUT_COLUMNS, ScoreError, score_file
from ticket_nlp.cli import app

from ..conftest import ROOT
from .test_batch import HEADER, ROWS, STATUS

# bad rows beyond test_batch's: emoji only, whitespace only, spreadsheet null marker, a claimed reason
# left empty, a number as the description's neighbour
MORE_ROWS = [
    ["10", "质量问题", "😡😡😡", "1"],
    ["11", "质量问题", "   ", "2"],
    ["12", "", "鞋子挤脚，想换大一码", "3"],
    ["13", "七天无理由退货", "NULL", "4"],
]
MORE_STATUS = ["not_text", "empty", "ok", "not_text"]


@pytest.fixture(scope="session")
def spark():
    """One small local session for every Spark test: 2 cores, no UI, few shuffle partitions."""
    from ticket_nlp.spark import get_session

    session = get_session("local[2]", {"spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2",
                                       "spark.ui.showConsoleProgress": "false"})
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def read_back(path: Path) -> tuple[list[str], list[list]]:
    """A Parquet file or a directory of parts, as header and rows (parts in name order)."""
    table = pq.read_table(path)
    return table.column_names, [list(r.values()) for r in table.to_pylist()]


def both_engines(clf, model_dir, spark, src: Path, tmp_path: Path, **kw):
    """Score ``src`` with both engines; returns (local header, rows, summary), (spark header, rows, summary)."""
    from ticket_nlp.spark import score_spark

    local = score_file(clf, src, tmp_path / "local.parquet", workers=1, **kw)
    remote = score_spark(str(src), str(tmp_path / "spark.parquet"), model=model_dir, spark=spark, **kw)
    return (*read_back(tmp_path / "local.parquet"), local), (*read_back(tmp_path / "spark.parquet"), remote)


def same_summary(a, b) -> None:
    da, db = a.to_dict(), b.to_dict()
    for volatile in ("seconds", "rows_per_second"):
        da.pop(volatile), db.pop(volatile)
    assert da == db


def assert_equal_rows(local, remote) -> None:
    (lh, lrows, lsum), (rh, rrows, rsum) = local, remote
    assert rh == lh
    assert len(rrows) == len(lrows)
    for n, (a, b) in enumerate(zip(lrows, rrows, strict=True)):
        assert b == a, f"row {n} differs"
    same_summary(lsum, rsum)


@pytest.mark.spark
def test_parquet_with_bad_rows_and_typed_columns(clf, model_dir, spark, tmp_path):
    rows = ROWS + MORE_ROWS
    columns = {h: [r[i] for r in rows] for i, h in enumerate(HEADER)}
    columns["件数"] = [i if i % 3 else None for i in range(len(rows))]          # int with nulls
    columns["金额"] = [float(r[3]) for r in rows]                               # double
    columns["已签收"] = [i % 2 == 0 for i in range(len(rows))]                  # boolean
    columns["买家退款说明"] = [None if i == 2 else v for i, v in enumerate(columns["买家退款说明"])]  # a null description
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table(columns), src)

    local, remote = both_engines(clf, model_dir, spark, src, tmp_path)
    assert_equal_rows(local, remote)
    header, out = remote[0], remote[1]
    assert header == [*HEADER, "件数", "已签收", EXTRA_COLUMN, *OUTPUT_COLUMNS]
    assert [r[header.index("tn_status")] for r in out] == STATUS + MORE_STATUS
    assert [r[0] for r in out] == [r[0] for r in rows]  # input order kept across part files
    assert len(list((tmp_path / "spark.parquet").glob("part-*.parquet"))) == 2  # spread over both cores
    assert out[0][header.index("tn_label")] == "quality_defect" and out[0][header.index("tn_mismatch")] == "mismatch"
    assert out[4][header.index("金额")] == "120.0" and out[1][header.index("件数")] == "1"
    assert not (tmp_path / "spark.parquet.partial").exists()


@pytest.mark.spark
def test_rows_in_one_of_many_partitions_are_spread(clf, model_dir, spark, tmp_path):
    """Spark splits a file by bytes, rows come in row groups: all rows may sit in one of the splits.
    The benchmark's 1M-row file did that and scored on one core; the spread must catch it."""
    from ticket_nlp.spark import partition_rows

    rows = (ROWS + MORE_ROWS) * 20
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({h: [f"{n}-{r[i]}" if i == 0 else r[i] for n, r in enumerate(rows)]
                             for i, h in enumerate(HEADER)}), src)  # one row group
    spark.conf.set("spark.sql.files.maxPartitionBytes", "2048")
    spark.conf.set("spark.sql.files.openCostInBytes", "0")
    try:
        read = spark.read.parquet(str(src))
        assert read.rdd.getNumPartitions() >= 2 and len(partition_rows(read)) == 1  # the trap, as in the benchmark
        local, remote = both_engines(clf, model_dir, spark, src, tmp_path)
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
        spark.conf.unset("spark.sql.files.openCostInBytes")
    assert_equal_rows(local, remote)
    parts = sorted((tmp_path / "spark.parquet").glob("part-*.parquet"))
    assert [pq.read_metadata(p).num_rows > 0 for p in parts] == [True, True]


@pytest.mark.spark
def test_gbk_sample_export(clf, model_dir, spark, tmp_path):
    """The shipped Pinduoduo-style export: GBK detected, quoted line breaks, bad rows among 2,500."""
    src = ROOT / "data" / "samples" / "pdd_aftersales_gbk.csv"
    local, remote = both_engines(clf, model_dir, spark, src, tmp_path)
    assert_equal_rows(local, remote)
    assert remote[2].rows == 2500 and set(remote[2].statuses) > {"ok", "empty", "not_text"}


@pytest.mark.spark
def test_ragged_utf8_bom_csv(clf, model_dir, spark, tmp_path):
    """Cells beyond the header's width go to tn_extra_fields, short rows are padded, as locally."""
    src = tmp_path / "in.csv"
    with open(src, "w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow([f" {HEADER[0]}", *HEADER[1:]])  # a header with stray space, stripped by both
        w.writerows(ROWS + MORE_ROWS)
        w.writerow(["20", "质量问题", "屏幕有划痕，换新", "9", "多出来的", "又一个,带逗号"])
        w.writerow(["21", "尺码不合适"])
    local, remote = both_engines(clf, model_dir, spark, src, tmp_path)
    assert_equal_rows(local, remote)
    header, out = remote[0], remote[1]
    assert header[0] == HEADER[0]
    extra = header.index(EXTRA_COLUMN)
    assert out[-2][extra] == "多出来的,又一个,带逗号" and out[-2][header.index("tn_status")] == "ok"
    assert out[-1][header.index("tn_status")] == "empty" and out[-1][extra] is None


@pytest.mark.spark
def test_headers_with_dots_and_backticks(clf, model_dir, spark, tmp_path):
    """Exports name columns "No." or "a.b": Spark must take them as names, not nested fields."""
    src = tmp_path / "dots.csv"
    with open(src, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["No.", "问题描述", "申请原因", "备注.内部`标记`"])
        w.writerows([["1", "袖口开线了", "七天无理由退货", "a"], ["2", "鞋子小了一码", "尺码不合适", "b"]])
    local, remote = both_engines(clf, model_dir, spark, src, tmp_path)
    assert_equal_rows(local, remote)
    assert remote[0][:4] == ["No.", "问题描述", "申请原因", "备注.内部`标记`"]


@pytest.mark.spark
def test_empty_export(clf, model_dir, spark, tmp_path):
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({h: pa.array([], pa.string()) for h in HEADER}), src)
    local, remote = both_engines(clf, model_dir, spark, src, tmp_path)
    assert_equal_rows(local, remote)
    assert remote[0] == [*HEADER, EXTRA_COLUMN, *OUTPUT_COLUMNS] and remote[1] == []


@pytest.mark.spark
def test_cli_engine_spark(model_dir, spark, tmp_path):
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({h: [r[i] for r in ROWS] for i, h in enumerate(HEADER)}), src)
    out = tmp_path / "scored"
    args = ["score", str(src), "-o", str(out), "--model", str(model_dir), "--engine", "spark"]
    runner = CliRunner()
    for _ in range(2):  # the second run replaces the first run's output
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        flat = "".join(result.output.split())  # the table title wraps at the terminal's width
        assert f"{len(ROWS)}rows->{out}" in flat and "notscored:too_long" in flat
        assert (out / "_SUCCESS").exists() and not Path(f"{out}.partial").exists()
        assert pq.read_table(out).num_rows == len(ROWS)
    default = runner.invoke(app, args[:2] + args[4:])
    assert default.exit_code == 0, default.output
    assert (tmp_path / "in.scored.parquet" / "_SUCCESS").exists()


@pytest.mark.spark
def test_refuses_what_it_would_overwrite_or_rescore(model_dir, spark, tmp_path):
    from ticket_nlp.spark import score_spark

    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({h: [r[i] for r in ROWS] for i, h in enumerate(HEADER)}), src)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(ScoreError, match="not a Spark scoring output"):
        score_spark(str(src), str(precious), model=model_dir, spark=spark)
    assert (precious / "notes.txt").read_text() == "keep me"
    with pytest.raises(ScoreError, match="would replace the input"):
        score_spark(str(src), f"{src}/", model=model_dir, spark=spark)
    score_spark(str(src), str(tmp_path / "once"), model=model_dir, spark=spark)
    with pytest.raises(ScoreError, match="looks scored already"):
        score_spark(str(tmp_path / "once"), str(tmp_path / "twice"), model=model_dir, spark=spark)
    with pytest.raises(ScoreError, match="no description column"):
        pq.write_table(pa.table({"a": ["x"]}), tmp_path / "bare.parquet")
        score_spark(str(tmp_path / "bare.parquet"), str(tmp_path / "bare.out"), model=model_dir, spark=spark)
    assert not (tmp_path / "twice").exists() and not (tmp_path / "bare.out.partial").exists()


# --- no JVM needed -------------------------------------------------------------------------------
def test_missing_pyspark_is_named(monkeypatch):
    from ticket_nlp.spark import check_environment

    monkeypatch.setitem(sys.modules, "pyspark", None)  # what `import pyspark` does when it is not installed
    with pytest.raises(ScoreError, match=r"pyspark.*ticket-nlp\[spark\]"):
        check_environment()


def test_missing_java_is_named(monkeypatch, tmp_path):
    from ticket_nlp.spark import check_environment

    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no java here
    with pytest.raises(ScoreError, match="needs Java 17 or 21.*JAVA_HOME"):
        check_environment()
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(ScoreError, match="has no bin/java"):
        check_environment()


def test_cli_reports_missing_java(model_dir, monkeypatch, tmp_path):
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    result = CliRunner().invoke(app, ["score", str(ROOT / "data" / "samples" / "pdd_aftersales_gbk.csv"),
                                      "-o", str(tmp_path / "out"), "--model", str(model_dir), "--engine", "spark"])
    assert result.exit_code == 2 and "needs Java" in result.output


def test_spark_paths_and_settings():
    from ticket_nlp.spark import default_output, input_format, parse_conf

    assert default_output("s3a://bucket/exports/2026-11.csv") == "s3a://bucket/exports/2026-11.scored.parquet"
    assert default_output("hdfs:///warehouse/tickets/") == "hdfs:///warehouse/tickets.scored.parquet"
    assert input_format("abfss://c@a.dfs.core.windows.net/tickets") == "parquet"
    assert input_format("x/export.TSV") == "tsv"
    with pytest.raises(ScoreError, match="local engine"):
        input_format("export.xlsx")
    assert parse_conf(["spark.executor.memory=4g", "spark.a=b=c"]) == {"spark.executor.memory": "4g", "spark.a": "b=c"}
    with pytest.raises(ScoreError, match="KEY=VALUE"):
        parse_conf(["spark.executor.memory"])


@pytest.mark.spark
def test_mlflow_model_uri_resolves_on_the_driver(model_dir, monkeypatch, tmp_path):
    """A runs:/ URI is downloaded once on the driver and bundled like a directory (same content name)."""
    from mlflow import MlflowClient

    from ticket_nlp.model import ArtifactError
    from ticket_nlp.spark import model_bundle, resolve_model

    store = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # a file store keeps the test fast; servers work alike
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    client = MlflowClient(tracking_uri=store)  # no global MLflow state left behind
    run = client.create_run(client.create_experiment("spark-test"))
    # the layout the pyfunc model has: artifacts/<model directory>
    client.log_artifacts(run.info.run_id, str(model_dir), "model/artifacts/ticket-classifier")
    uri = f"runs:/{run.info.run_id}/model"
    local = resolve_model(uri)
    assert (local / "model.joblib").read_bytes() == (model_dir / "model.joblib").read_bytes()
    assert model_bundle(uri).name == model_bundle(model_dir).name
    with pytest.raises(ArtifactError, match="cannot fetch model"):
        resolve_model("runs:/0123456789abcdef0123456789abcdef/model")
