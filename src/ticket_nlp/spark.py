"""Scoring ticket exports on a Spark cluster: the same cells as the local engine, row for row.

Why it is built this way:

- **Same results by construction.** Each Arrow batch of rows goes through ``batch.score_chunk``, the
  function the local engine calls, inside ``DataFrame.mapInArrow``. Cells reach it as the same Python
  values the local engine's pyarrow reader gives (``None`` read as ``""``), and every output cell is
  written through ``batch.text_cell``, as the local Parquet writer does: every column is text, ``""``
  is null. So a Spark output read back equals the local engine's Parquet output. (``mapInArrow``,
  not ``mapInPandas``: pandas would turn an integer column with nulls into floats, 5 into "5.0".
  Not ``mlflow.pyfunc.spark_udf`` either: it returns the pyfunc's columns, not the tn_* cells.)
- **The model travels once.** The driver loads and verifies the model, copies its two files and the
  claimed-reason mapping it uses into one content-named directory, and ``SparkContext.addFile`` ships
  that directory to every executor once. Each Python worker loads it on its first batch and keeps it
  (module-level cache; Spark reuses Python workers), so no batch carries or reloads the model. An
  MLflow URI (``models:/…``, ``runs:/…``) is downloaded on the driver first and shipped the same way,
  so executors need no access to the tracking server.
- **Output is all or nothing.** Partitioned Parquet goes to ``<output>.partial``; rows in and rows
  out are counted, and only when they agree is the directory renamed onto ``<output>``.
- **Order.** Input whose rows sit in fewer partitions than the cluster has cores (one big CSV, a
  Parquet file of one row group) is spread by a range repartition on a row id, so all cores score
  and the part files, read in name order, keep the input's row order.

CSV/TSV are read with Python's ``csv`` dialect (``"`` quotes, ``""`` escapes, quoted line breaks),
header stripped like the local reader. Cells beyond the header's width land in ``tn_extra_fields``
as they do locally: Spark keeps the raw record of a ragged row, and the extra cells are cut from it.

pyspark is imported only here and only when used; a missing pyspark or Java is reported by name.
"""

from __future__ import annotations

import csv
import functools
import io
import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ticket_nlp.batch import (
    CHUNK_ROWS,
    EXTRA_COLUMN,
    OUTPUT_COLUMNS,
    PRODUCT_HEADERS,
    REASON_HEADERS,
    TEXT_HEADERS,
    ScoreError,
    Summary,
    score_chunk,
    text_cell,
)
from ticket_nlp.config import METADATA_FILE, MODEL_FILE, model_dir
from ticket_nlp.model import Classifier, freeze_heap, is_model_uri, resolve_model_uri, sha256_file
from ticket_nlp.tables import FORMATS, detect_encoding, find_column

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

DEFAULT_MASTER = "local[*]"
REASONS_FILE = "reasons.yaml"
RAW_RECORD = "_tn_raw_record"  # Spark's copy of a ragged CSV record, never written out
ROW_ID = "_tn_row_id"
SPARK_CHARSETS = {"iso-8859-1", "us-ascii", "utf-16", "utf-16be", "utf-16le", "utf-32", "utf-8"}
INSTALL_HINT = "pip install 'ticket-nlp[spark]'"


# --- environment ---------------------------------------------------------------------------------
def _under_spark_submit() -> bool:
    """spark-submit (or pyspark) started the JVM already and passes its gateway to us."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def check_environment() -> None:
    """Fail with what is missing (pyspark, Java) before Spark prints a JVM stack trace."""
    try:
        import pyspark  # noqa: F401
    except ImportError as err:
        raise ScoreError(f"the Spark engine needs pyspark, which is not installed: {INSTALL_HINT}") from err
    if _under_spark_submit():
        return
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return
    if home:
        raise ScoreError(f"the Spark engine needs Java: JAVA_HOME={home} has no bin/java. "
                         "Point JAVA_HOME at a JDK 17 or 21, or unset it to use java from PATH")
    if shutil.which("java") is None:
        raise ScoreError("the Spark engine needs Java 17 or 21, and there is no `java` on PATH and no "
                         "JAVA_HOME. Install a JDK (e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME")


def get_session(master: str | None = None, conf: dict[str, str] | None = None) -> SparkSession:
    """The active session if there is one (tests, spark-submit), else a new one for ``master``.

    In local mode the executors' Python must be this interpreter and see this package, so
    PYSPARK_PYTHON and the executors' PYTHONPATH are set from here unless the caller set them.
    On a cluster both are the cluster's business (``ticket-nlp[spark]`` installed on the nodes).
    """
    check_environment()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and master is None and not conf:
        return active
    conf = dict(conf or {})
    if master is None and not _under_spark_submit():
        master = DEFAULT_MASTER
    builder = SparkSession.builder.appName("ticket-nlp score")
    if master:
        builder = builder.master(master)
    if conf.get("spark.pyspark.python") and not _under_spark_submit():
        os.environ["PYSPARK_PYTHON"] = conf["spark.pyspark.python"]  # PySpark reads the variable, not the setting
    if master and master.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        package_root = str(Path(__file__).resolve().parents[1])
        conf.setdefault("spark.executorEnv.PYTHONPATH",
                        os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p))
        conf.setdefault("spark.ui.enabled", "false")
    conf.setdefault("spark.ui.showConsoleProgress", "true" if sys.stderr.isatty() else "false")  # as the local bar
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def parse_conf(items: list[str] | None) -> dict[str, str]:
    """``--conf KEY=VALUE`` options as a dict."""
    conf = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ScoreError(f"--conf wants KEY=VALUE (e.g. spark.executor.memory=4g), got {item!r}")
        conf[key.strip()] = value
    return conf


# --- paths ---------------------------------------------------------------------------------------
def _local_path(uri: str) -> Path | None:
    """The local path a URI names, or None for a remote one (hdfs://, s3a://, abfss:// …)."""
    if uri.startswith("file:"):
        return Path(re.sub(r"^file:(//)?", "", uri))
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:/", uri):
        return None
    return Path(uri)


def input_format(uri: str) -> str:
    """parquet, csv or tsv, from the name, else from a local directory's files; Parquet otherwise
    (warehouse tables are directories of Parquet files)."""
    name = uri.rstrip("/").rsplit("/", 1)[-1].lower()
    fmt = {**FORMATS, ".pq": "parquet"}.get(Path(name).suffix)
    if fmt in ("parquet", "csv", "tsv"):
        return fmt
    if fmt in ("xlsx", "jsonl"):
        raise ScoreError(f"{uri}: the Spark engine reads Parquet and CSV/TSV; score .xlsx and .jsonl "
                         "with the local engine (--engine local)")
    local = _local_path(uri)
    if local is not None and local.is_dir():
        for suffix, fmt in ((".parquet", "parquet"), (".csv", "csv"), (".tsv", "tsv")):
            if any(local.rglob(f"*{suffix}")):
                return fmt
    return "parquet"


def default_output(uri: str) -> str:
    """``export.csv`` -> ``export.scored.parquet`` (a directory of Parquet parts)."""
    base = uri.rstrip("/")
    base = re.sub(r"\.(parquet|pq|csv|tsv|txt)$", "", base, flags=re.IGNORECASE)
    return base + ".scored.parquet"


class _FileSystem:
    """The Hadoop file system behind a URI, so local paths and object stores rename the same way."""

    def __init__(self, spark: SparkSession, uri: str):
        jvm = spark.sparkContext._jvm
        self._path = jvm.org.apache.hadoop.fs.Path
        self.fs = self._path(uri).getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())

    def exists(self, uri: str) -> bool:
        return bool(self.fs.exists(self._path(uri)))

    def is_scored_output(self, uri: str) -> bool:
        """A directory a previous Spark run committed (it has _SUCCESS): safe to replace."""
        return bool(self.fs.exists(self._path(uri.rstrip("/") + "/_SUCCESS")))

    def delete(self, uri: str) -> None:
        self.fs.delete(self._path(uri), True)

    def rename(self, src: str, dst: str) -> None:
        if not self.fs.rename(self._path(src), self._path(dst)):
            raise ScoreError(f"could not rename {src} to {dst}")


# --- the model -----------------------------------------------------------------------------------
def resolve_model(model: str | Path | None) -> Path:
    """A local model directory for a directory or an MLflow model URI (downloaded here, once)."""
    raw = str(model or model_dir())  # model_dir() is TICKET_NLP_MODEL when set, a URI too
    return resolve_model_uri(raw) if is_model_uri(raw) else Path(raw)


def model_bundle(model: str | Path | None) -> Path:
    """A directory holding the model and the claimed-reason mapping this driver would use.

    Named by their contents, so shipping it twice in a session is a no-op and two models never
    collide; the mapping travels too, so TICKET_NLP_REASONS set on the driver holds on executors.
    """
    directory = resolve_model(model)
    key = _bundle_key(directory)
    if key in _BUNDLES and _BUNDLES[key].exists():
        return _BUNDLES[key]
    clf = Classifier.load(directory)  # verifies the sha256 on the driver: fail before any job starts
    reasons = Path(clf.reasons.source)
    name = f"ticket-nlp-model-{clf.metadata['artifact_sha256'][:12]}-{sha256_file(reasons)[:8]}"
    home = Path(tempfile.gettempdir()) / f"ticket-nlp-spark-{os.getuid()}"
    home.mkdir(mode=0o700, exist_ok=True)
    if home.stat().st_uid != os.getuid():  # someone else's directory could hold a planted pickle
        raise ScoreError(f"{home} belongs to another user; remove it or set TMPDIR elsewhere")
    home.chmod(0o700)
    bundle = home / name
    if not bundle.exists():
        tmp = bundle.with_name(f"{name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for file in (MODEL_FILE, METADATA_FILE):
            shutil.copy2(directory / file, tmp / file)
        shutil.copy2(reasons, tmp / REASONS_FILE)
        try:
            tmp.rename(bundle)
        except OSError:  # another run made it meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
    _BUNDLES[key] = bundle
    return bundle


_BUNDLES: dict[tuple, Path] = {}


def _bundle_key(directory: Path) -> tuple:
    """What a bundle depends on, cheap to read: the model files and the reasons file as they are now."""
    from ticket_nlp.config import reasons_path

    def stamp(path: Path) -> tuple:
        st = path.stat() if path.exists() else None
        return (str(path.resolve()), st.st_mtime_ns if st else None, st.st_size if st else None)

    return (stamp(directory / MODEL_FILE), stamp(directory / METADATA_FILE), stamp(Path(reasons_path())))


_MODELS: dict[str, Classifier] = {}


def _worker_model(name: str) -> Classifier:
    """The shipped model, loaded once per Python worker and kept for every later batch."""
    clf = _MODELS.get(name)
    if clf is None:
        from pyspark import SparkFiles

        from ticket_nlp.reasons import ReasonMap

        root = Path(SparkFiles.get(name))
        clf = _MODELS[name] = Classifier.load(root, reasons=ReasonMap.load(root / REASONS_FILE))
        freeze_heap()
    return clf


# --- reading -------------------------------------------------------------------------------------
def _spark_encoding(spark: SparkSession, uri: str, encoding: str | None) -> str:
    """The charset to read a CSV with: given, else detected from a local file as the local engine does."""
    if encoding is None:
        local = _local_path(uri)
        if local is not None and local.is_dir():
            local = next((p for p in sorted(local.rglob("*")) if p.is_file() and p.suffix.lower() in (".csv", ".tsv", ".txt")),
                         None)
        encoding = detect_encoding(local) if local is not None and local.is_file() else "utf-8"
    if encoding.lower().replace("_", "-") in ("utf-8-sig", "utf8-sig", "utf8"):
        encoding = "utf-8"
    if encoding.lower() not in SPARK_CHARSETS:  # Spark 4 accepts only UTF/Latin-1 unless told otherwise
        spark.conf.set("spark.sql.legacy.javaCharsets", "true")
    return encoding


def read_input(spark: SparkSession, uri: str, fmt: str, encoding: str | None = None) -> tuple[DataFrame, bool]:
    """The input as a DataFrame, and whether it carries the raw-record column (CSV/TSV)."""
    if fmt == "parquet":
        return spark.read.parquet(uri), False
    from pyspark.sql.types import StringType, StructField, StructType

    options = {"header": "true", "multiLine": "true", "escape": '"', "quote": '"',
               "sep": "," if fmt == "csv" else "\t", "encoding": _spark_encoding(spark, uri, encoding)}
    names = spark.read.options(**options).csv(uri).columns
    header = [n.replace("\ufeff", "").strip() for n in names]  # as the local reader strips them
    schema = StructType([StructField(h, StringType()) for h in header] + [StructField(RAW_RECORD, StringType())])
    df = (spark.read.options(**options, mode="PERMISSIVE", columnNameOfCorruptRecord=RAW_RECORD)
          .schema(schema).csv(uri))
    return df, True


def partition_rows(df: DataFrame) -> list[int]:
    """Rows in each non-empty input partition: one job that reads no columns of a Parquet input.
    (The partition count alone misleads: Spark splits a file by bytes, but rows come in row groups,
    so a 1M-row file of one row group gives two partitions of which one holds every row.)"""
    from pyspark.sql import functions as F

    return [row["count"] for row in df.groupBy(F.spark_partition_id().alias("p")).count().collect()]


def _spread(df: DataFrame, rows: list[int]) -> DataFrame:
    """Use every core when the rows sit in fewer partitions than cores (one big CSV, a small Parquet
    file) or pile up in one, keeping the row order across the part files; else leave the input be."""
    from pyspark.sql import functions as F

    cores = df.sparkSession.sparkContext.defaultParallelism
    total = sum(rows)
    if not total or (len(rows) >= cores and max(rows) <= 2 * total / cores):
        return df
    return (df.withColumn(ROW_ID, F.monotonically_increasing_id()).repartitionByRange(cores, ROW_ID)
            .sortWithinPartitions(ROW_ID).drop(ROW_ID))


# --- scoring -------------------------------------------------------------------------------------
def _extra_cells(raw: str | None, width: int, delimiter: str) -> str | None:
    """Cells beyond the header's width in a ragged record, joined as the local engine joins them."""
    if not raw:
        return None
    row = next(csv.reader(io.StringIO(raw), delimiter=delimiter), [])
    return ",".join(row[width:]) or None


def _score_batches(batches: Iterator[pa.RecordBatch], *, model: str, width: int, text_index: int,
                   reason_index: int | None, product_index: int | None, raw_index: int | None, delimiter: str,
                   names: list[str]) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: each batch through ``score_chunk``, every cell through ``text_cell``."""
    import pyarrow as pa

    clf = _worker_model(model)
    for batch in batches:
        columns = [column.to_pylist() for column in batch.columns]
        n = batch.num_rows
        texts = ["" if v is None else v for v in columns[text_index]]
        reasons = ["" if v is None else v for v in columns[reason_index]] if reason_index is not None else [""] * n
        products = columns[product_index] if product_index is not None else None
        cells = score_chunk(clf, texts, reasons, products)
        arrays = [pa.array([text_cell(v) for v in columns[i]], pa.string()) for i in range(width)]
        extras = ([_extra_cells(raw, width, delimiter) for raw in columns[raw_index]] if raw_index is not None
                  else [None] * n)
        arrays.append(pa.array(extras, pa.string()))
        arrays.extend(pa.array([text_cell(row[j]) for row in cells], pa.string()) for j in range(len(OUTPUT_COLUMNS)))
        yield pa.RecordBatch.from_arrays(arrays, names=names)


def score_dataframe(df: DataFrame, model: str, *, text_col: str | None = None, reason_col: str | None = None,
                    product_col: str | None = None, raw_record: bool = False, delimiter: str = ",", source: str = "input") -> DataFrame:
    """The scored DataFrame: input columns as text, then tn_extra_fields and the tn_* columns.

    ``model`` is the name of a bundle already shipped with ``SparkContext.addFile``.
    """
    from pyspark.sql.types import StringType, StructField, StructType

    header = [c for c in df.columns if c != RAW_RECORD]
    clash = [c for c in (EXTRA_COLUMN, *OUTPUT_COLUMNS) if c in header]
    if clash:
        raise ScoreError(f"{source}: already has {', '.join(clash)}; it looks scored already. Score the original export")
    ti = find_column(header, text_col, TEXT_HEADERS, "description", Path(source), required=True)
    ri = find_column(header, reason_col, REASON_HEADERS, "claimed reason", Path(source), required=False)
    pi = find_column(header, product_col, PRODUCT_HEADERS, "product", Path(source), required=False)
    columns = [_col(c) for c in header] + ([_col(RAW_RECORD)] if raw_record else [])
    # positional names in and out of mapInArrow (it resolves columns by name, and Spark parses
    # "No." as a nested field); the cells are found by position, the real names put back by toDF
    df = df.select(*columns)
    df = df.toDF(*[f"_in{i}" for i in range(len(columns))])
    names = [*header, EXTRA_COLUMN, *OUTPUT_COLUMNS]
    slots = [f"_tn{i}" for i in range(len(names))]
    schema = StructType([StructField(n, StringType()) for n in slots])
    body = functools.partial(_score_batches, model=model, width=len(header), text_index=ti, reason_index=ri,
                             product_index=pi, raw_index=len(header) if raw_record else None, delimiter=delimiter, names=slots)
    return df.mapInArrow(body, schema).toDF(*names)


def _col(name: str):
    """A column by its exact name: backticks keep Spark from reading "No." or "a.b" as a nested field."""
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def summarize(scored: DataFrame, reason_col: str | None) -> Summary:
    """The local engine's summary, from one aggregation over the written output."""
    keys = ["tn_status", "tn_label", "tn_mismatch", "tn_needs_review"] + ([reason_col] if reason_col else [])
    summary = Summary()
    for row in scored.groupBy(*[_col(k) for k in keys]).count().collect():
        n, status = row["count"], row["tn_status"]
        summary.rows += n
        summary.statuses[status] += n
        if status != "ok":
            continue
        summary.labels[row["tn_label"]] += n
        summary.needs_review += n if row["tn_needs_review"] == "True" else 0
        summary.mismatch[row["tn_mismatch"]] += n
        key = str(row[reason_col] or "").strip() if reason_col else ""
        summary.mismatch_by_reason.setdefault(key or "(none)", Counter())[row["tn_mismatch"]] += n
    return summary


def score_spark(input_uri: str, output_uri: str, *, model: str | Path | None = None,
                spark: SparkSession | None = None, master: str | None = None, conf: dict[str, str] | None = None,
                text_col: str | None = None, reason_col: str | None = None, product_col: str | None = None,
                encoding: str | None = None, chunk_rows: int = CHUNK_ROWS) -> Summary:
    """Score ``input_uri`` (Parquet, CSV/TSV; any URI Spark reads) into partitioned Parquet at ``output_uri``.

    Uses ``spark`` or the active session, else starts one on ``master`` with ``conf`` and stops it
    at the end. ``chunk_rows`` is the Arrow batch size (rows per ``score_chunk`` call) unless
    ``conf`` sets spark.sql.execution.arrow.maxRecordsPerBatch. Returns the summary the local engine
    would give; its ``seconds`` cover the Spark jobs, not the session start.
    """
    fmt = input_format(input_uri)
    bundle = model_bundle(model)  # before Spark starts: a bad model fails fast
    own = False
    if spark is None:
        check_environment()
        from pyspark.sql import SparkSession

        own = SparkSession.getActiveSession() is None
        spark = get_session(master, conf)
    try:
        return _run(spark, bundle, input_uri, output_uri, fmt, text_col, reason_col, product_col, encoding,
                    chunk_rows, conf or {})
    finally:
        if own:
            spark.stop()


def _run(spark: SparkSession, bundle: Path, input_uri: str, output_uri: str, fmt: str, text_col: str | None,
         reason_col: str | None, product_col: str | None, encoding: str | None, chunk_rows: int,
         conf: dict[str, str]) -> Summary:
    from pyspark.errors import AnalysisException

    start = time.perf_counter()
    fs = _FileSystem(spark, output_uri)
    output_uri = output_uri.rstrip("/")
    partial = output_uri + ".partial"
    if output_uri == input_uri.rstrip("/"):
        raise ScoreError(f"{output_uri}: the output would replace the input; choose another -o")
    if fs.exists(output_uri) and not fs.is_scored_output(output_uri):
        raise ScoreError(f"{output_uri} exists and is not a Spark scoring output; remove it or choose another -o")
    batch_key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    if batch_key not in conf:
        spark.conf.set(batch_key, str(chunk_rows))
    spark.sparkContext.addFile(str(bundle), recursive=True)
    try:
        df, raw = read_input(spark, input_uri, fmt, encoding)
    except AnalysisException as err:
        raise ScoreError(f"{input_uri}: Spark cannot read it as {fmt}: {str(err).splitlines()[0]}") from err
    rows = partition_rows(df)
    rows_in = sum(rows)
    scored = score_dataframe(_spread(df, rows), bundle.name, text_col=text_col, reason_col=reason_col,
                             product_col=product_col, raw_record=raw, delimiter="\t" if fmt == "tsv" else ",", source=input_uri)
    header = [c for c in df.columns if c != RAW_RECORD]
    ri = find_column(header, reason_col, REASON_HEADERS, "claimed reason", Path(input_uri), required=False)
    try:
        scored.write.mode("overwrite").parquet(partial)
        summary = summarize(spark.read.parquet(partial), header[ri] if ri is not None else None)
        if summary.rows != rows_in:
            raise ScoreError(f"{input_uri}: {rows_in:,} rows in but {summary.rows:,} rows out; output not written")
        previous = f"{output_uri.rstrip('/')}.previous"
        if fs.exists(output_uri):  # set the old output aside: a failed rename below loses nothing
            if fs.exists(previous):
                fs.delete(previous)
            fs.rename(output_uri, previous)
        try:
            fs.rename(partial, output_uri)
        except BaseException:
            if fs.exists(previous):
                fs.rename(previous, output_uri)
            raise
        if fs.exists(previous):
            fs.delete(previous)
    except BaseException:
        if fs.exists(partial):
            fs.delete(partial)
        raise
    summary.seconds = time.perf_counter() - start
    return summary
