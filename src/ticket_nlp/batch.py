"""Batch scoring of ticket exports: any export a merchant has, streamed in chunks, nothing lost.

Reads CSV/TSV (UTF-8, UTF-8 with BOM, GBK/GB18030 detected), XLSX, Parquet and JSONL; finds the
description and claimed-reason columns from the headers real exports use; keeps every input column
in order and appends the prediction columns; gives rows it cannot score a status instead of a
label; writes to a temporary file renamed on success; and can resume an interrupted CSV/TSV/JSONL
run from its last finished chunk. Memory depends on the chunk size, not the file size.
"""

from __future__ import annotations

import csv
import json
import operator
import os
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from ticket_nlp.config import MAX_TEXT_CHARS
from ticket_nlp.data import file_sha256
from ticket_nlp.model import Classifier, freeze_heap
from ticket_nlp.tables import TableError, file_format, find_column, open_table

ScoreError = TableError  # what batch callers catch: the input cannot be scored

# Header names real exports use (../shared/REASONS.md), most specific first.
TEXT_HEADERS = ("买家退款说明", "售后备注", "问题描述", "退款说明", "退货说明", "买家留言", "申请说明", "售后说明",
                "description", "text", "描述", "备注")
REASON_HEADERS = ("买家退款原因", "售后原因", "申请原因", "退货原因", "退款原因", "claimed_reason", "claimed", "reason")
# What names the item: Tmall's 宝贝标题, JD's 商品名称, or a category. Read for LABELING.md's fit rule.
PRODUCT_HEADERS = ("宝贝标题", "商品名称", "商品标题", "商品", "product_category", "product", "类目", "品类")
OUTPUT_COLUMNS = ("tn_status", "tn_label", "tn_confidence", "tn_needs_review", "tn_mismatch", "tn_claimed_label",
                  "tn_severity", "tn_product_family", "tn_evidence")
EXTRA_COLUMN = "tn_extra_fields"  # cells beyond the header's width, kept rather than dropped
RESUMABLE = {"csv", "tsv", "jsonl"}
CHUNK_ROWS = 5000


def default_output(path: Path) -> Path:
    return path.with_name(f"{path.stem}.scored{path.suffix}")


# --- scoring -------------------------------------------------------------------------------------
SPREADSHEET_NOISE = frozenset({"#N/A", "#VALUE!", "#REF!", "#NAME?", "NULL", "NAN", "NONE", "N/A"})
_NOISE_CHARS = max(map(len, SPREADSHEET_NOISE))  # longer cells are not noise: no need to upper-case them


def row_status(value: Any) -> str:
    """Why a cell cannot be scored, or "ok"."""
    if not isinstance(value, str):
        return "empty" if value is None else "not_text"
    stripped = value.strip()
    if not stripped:
        return "empty"
    if len(stripped) > MAX_TEXT_CHARS:
        return "too_long"
    if not any(ch.isalpha() for ch in stripped) or (len(stripped) <= _NOISE_CHARS and stripped.upper() in SPREADSHEET_NOISE):
        return "not_text"  # numbers, punctuation, emoji, spreadsheet errors and null markers
    return "ok"


def score_chunk(clf: Classifier, texts: list[Any], reasons: list[Any],
                products: list[Any] | None = None) -> list[list[Any]]:
    """The appended cells (OUTPUT_COLUMNS) for each row of a chunk."""
    statuses = [row_status(t) for t in texts]
    ok = [i for i, s in enumerate(statuses) if s == "ok"]
    cells = clf.label_rows([texts[i] for i in ok], [str(reasons[i]).strip() or None for i in ok],
                           [products[i] for i in ok] if products is not None else None)
    out = [[s, *[""] * (len(OUTPUT_COLUMNS) - 1)] for s in statuses]
    for i, row in zip(ok, cells, strict=True):
        out[i] = ["ok", *row]
    return out


_WORKER: Classifier | None = None


def _score_in_worker(args: tuple[list[Any], list[Any], list[Any] | None]) -> list[list[Any]]:
    return score_chunk(_WORKER, *args)


# --- writing -------------------------------------------------------------------------------------
class Writer:
    """Streams rows to ``<output>.partial``; ``commit`` renames it onto the output."""

    def __init__(self, path: Path, header: list[str], append: bool = False):
        self.path, self.partial = path, path.with_name(path.name + ".partial")
        self.fmt = file_format(path, "write")
        self.header = header
        if self.fmt in ("csv", "tsv"):
            self.f = open(self.partial, "a" if append else "w", encoding="utf-8", newline="")  # noqa: SIM115
            self.w = csv.writer(self.f, delimiter="," if self.fmt == "csv" else "\t", lineterminator="\r\n")
            if not append:
                # UTF-8 with BOM: Excel and WPS open it with Chinese intact. The BOM is written by
                # hand: the "utf-8-sig" codec is pure Python and would encode every row again.
                self.f.write("\ufeff")
                self.w.writerow(header)
        elif self.fmt == "jsonl":
            self.f = open(self.partial, "a" if append else "w", encoding="utf-8")  # noqa: SIM115
        elif self.fmt == "xlsx":
            import openpyxl

            self.book = openpyxl.Workbook(write_only=True)
            self.ws = self.book.create_sheet("scored")
            self.ws.append(header)
        else:
            self.pq_writer = None

    def append(self, rows: list[list[Any]]) -> None:
        if self.fmt in ("csv", "tsv"):
            self.w.writerows(rows)
        elif self.fmt == "jsonl":
            self.f.writelines(json.dumps(dict(zip(self.header, r, strict=False)), ensure_ascii=False, default=str) + "\n"
                              for r in rows)
        elif self.fmt == "xlsx":
            for r in rows:
                self.ws.append([_xlsx_cell(v) for v in r])
        else:
            self._append_parquet(rows)

    def _append_parquet(self, rows: list[list[Any]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({h: pa.array([text_cell(r[i]) for r in rows], pa.string())
                          for i, h in enumerate(self.header)})
        if self.pq_writer is None:
            self.pq_writer = pq.ParquetWriter(self.partial, table.schema)
        self.pq_writer.write_table(table)

    def flush(self) -> int:
        """Make what was appended durable; returns the partial file's size."""
        if self.fmt in ("csv", "tsv", "jsonl"):
            self.f.flush()
            os.fsync(self.f.fileno())
        return self.partial.stat().st_size if self.partial.exists() else 0

    def commit(self) -> None:
        if self.fmt in ("csv", "tsv", "jsonl"):
            self.f.close()
        elif self.fmt == "xlsx":
            self.book.save(self.partial)
        else:
            if self.pq_writer is None:
                self._append_parquet([])
            self.pq_writer.close()
        os.replace(self.partial, self.path)

    def abort(self) -> None:
        """Stop writing. A CSV/TSV/JSONL partial file stays for --resume; others cannot resume."""
        if hasattr(self, "f"):
            self.f.close()
        if self.fmt not in RESUMABLE:
            if getattr(self, "pq_writer", None) is not None:
                self.pq_writer.close()
            self.partial.unlink(missing_ok=True)


def text_cell(value: Any) -> str | None:
    """A cell as Parquet output stores it. Every column is text: exports mix types within a column,
    and "" means missing. The Spark engine writes its cells through this too, so both engines agree."""
    return None if value in ("", None) else str(value)


def _xlsx_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("="):
        return "'" + value  # never let a description become a formula
    return value


# --- the run -------------------------------------------------------------------------------------
@dataclass
class Summary:
    rows: int = 0
    labels: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    mismatch: Counter = field(default_factory=Counter)
    mismatch_by_reason: dict[str, Counter] = field(default_factory=dict)
    needs_review: int = 0
    seconds: float = 0.0

    def add(self, reasons: list[Any], cells: list[list[Any]]) -> None:
        """Count a chunk's cells (OUTPUT_COLUMNS). Rows that were not scored have "" for label,
        review and mismatch, so counting whole columns and dropping "" counts the scored rows."""
        if len(reasons) != len(cells):
            raise ValueError(f"{len(reasons)} reasons for {len(cells)} rows")
        self.rows += len(cells)
        if not cells:
            return
        statuses, labels, _, review, mismatch, *_rest = zip(*cells, strict=True)
        self.statuses.update(statuses)
        self.labels.update(labels)
        self.mismatch.update(mismatch)
        for counter in (self.labels, self.mismatch):
            counter.pop("", None)
        self.needs_review += review.count(True)
        keys = [str(r).strip() or "(none)" for r in reasons]
        for (key, status), n in Counter(zip(keys, mismatch, strict=True)).items():
            if status:
                self.mismatch_by_reason.setdefault(key, Counter())[status] += n

    def to_dict(self) -> dict[str, Any]:
        scored = sum(self.labels.values())
        return {"rows": self.rows, "scored": scored, "labels": dict(self.labels), "statuses": dict(self.statuses),
                "mismatch_rate": self.mismatch["mismatch"] / scored if scored else 0.0,
                "mismatch_by_reason": {k: {"rows": sum(v.values()), "mismatch": v["mismatch"]}
                                       for k, v in sorted(self.mismatch_by_reason.items(),
                                                          key=lambda kv: -kv[1]["mismatch"])},
                "needs_review": self.needs_review, "seconds": round(self.seconds, 2),
                "rows_per_second": round(self.rows / self.seconds) if self.seconds else None}


@dataclass
class ExportTexts:
    """The descriptions of an export (and the items they are about), without labels: what
    ``ticket-nlp train --unlabelled`` adapts the model to. Rows ``row_status`` would not score are
    counted in ``skipped`` by status, not read."""

    texts: list[str]
    products: list[str | None] | None
    source: str
    sha256: str
    skipped: dict[str, int]


def read_export_texts(path: Path, text_col: str | None = None, product_col: str | None = None,
                      sheet: str | None = None, encoding: str | None = None) -> ExportTexts:
    """Every scorable description of an export, with its product when the export names one, found
    by the same headers ``score_file`` reads."""
    path = Path(path)
    table = open_table(path, sheet, encoding)
    ti = find_column(table.header, text_col, TEXT_HEADERS, "description", path, required=True)
    pi = find_column(table.header, product_col, PRODUCT_HEADERS, "product", path, required=False)
    texts: list[str] = []
    products: list[str | None] = []
    skipped: Counter[str] = Counter()
    for row in table.rows:
        value = row[ti] if ti < len(row) else None
        status = row_status(value)
        if status != "ok":
            skipped[status] += 1
            continue
        texts.append(value)
        product = row[pi] if pi is not None and pi < len(row) else None
        products.append((str(product).strip() or None) if product is not None else None)
    return ExportTexts(texts, products if pi is not None else None, str(path), file_sha256(path), dict(skipped))


def _state_path(output: Path) -> Path:
    return output.with_name(output.name + ".progress.json")


def _signature(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"input": str(path.resolve()), "size": st.st_size, "mtime": st.st_mtime}


def score_file(clf: Classifier, input_path: Path, output_path: Path | None = None, *,
               text_col: str | None = None, reason_col: str | None = None, product_col: str | None = None,
               sheet: str | None = None,
               encoding: str | None = None, workers: int | None = None, chunk_rows: int = CHUNK_ROWS,
               resume: bool = False, progress: bool | None = None, stop_after_chunks: int | None = None,
               on_chunk: Callable[[int, float], None] | None = None) -> Summary:
    """Score every row of an export into ``output_path``; returns the run's summary.

    ``on_chunk(rows_done, fraction_read)`` is called after each chunk is written (the API's upload
    jobs report progress with it). ``stop_after_chunks`` ends the run early as an interruption
    would (used by tests).
    """
    input_path = Path(input_path)
    output_path = Path(output_path) if output_path else default_output(input_path)
    out_fmt = file_format(output_path, "write")
    table = open_table(input_path, sheet, encoding)
    header = table.header
    ti = find_column(header, text_col, TEXT_HEADERS, "description", input_path, required=True)
    ri = find_column(header, reason_col, REASON_HEADERS, "claimed reason", input_path, required=False)
    pi = find_column(header, product_col, PRODUCT_HEADERS, "product", input_path, required=False)
    out_header = header + [EXTRA_COLUMN] + list(OUTPUT_COLUMNS)

    state_path = _state_path(output_path)
    done_rows, append = 0, False
    if resume and state_path.exists() and out_fmt in RESUMABLE:
        state = json.loads(state_path.read_text(encoding="utf-8"))
        if state.get("signature") != _signature(input_path) or state.get("chunk_rows") != chunk_rows:
            raise ScoreError(f"{state_path}: it belongs to another input or chunk size; remove it to start over")
        done_rows, append = state["rows_done"], True
        partial = output_path.with_name(output_path.name + ".partial")
        with open(partial, "r+b") as f:  # drop anything written after the last finished chunk
            f.truncate(state["partial_bytes"])
    elif resume and out_fmt not in RESUMABLE:
        raise ScoreError(f"--resume supports {', '.join(sorted(RESUMABLE))} outputs, not {out_fmt}")

    writer = Writer(output_path, out_header, append=append)
    summary = Summary(rows=0)
    width = len(header)

    def chunks() -> Iterator[tuple[list[list[Any]], list[Any], list[Any], list[Any] | None]]:
        rows = table.rows
        for _ in islice(rows, done_rows):  # finished before the interruption
            pass
        while batch := list(islice(rows, chunk_rows)):
            yield _prepare(batch)

    def _prepare(batch: list[list[Any]]):
        sep = "\t" if writer.fmt == "tsv" else ","

        def shape(row: list[Any]) -> list[Any]:  # short rows padded, cells beyond the header kept in one
            extra = row[width:]
            return list(row[:width]) + [""] * (width - len(row)) + [sep.join(map(str, extra)) if extra else ""]

        shaped = [[*row, ""] if len(row) == width else shape(row) for row in batch]
        texts = [r[ti] for r in shaped]
        reasons = [r[ri] if ri is not None else "" for r in shaped]
        products = [r[pi] for r in shaped] if pi is not None else None
        return shaped, texts, reasons, products

    workers = workers or os.cpu_count() or 1
    show = sys.stderr.isatty() if progress is None else progress
    start = time.perf_counter()
    global _WORKER
    _WORKER = clf  # forked workers inherit the model: it is not pickled per chunk
    clf.warm_up()  # made once here and shared by the forked workers
    # Keep the collector off the model's objects (a full collection walks them all, see
    # freeze_heap), here and in the workers, which inherit the frozen heap: freezing again in each
    # worker would walk, and copy, every page of the model.
    freeze_heap()
    pool = get_context("fork").Pool(workers) if workers > 1 else None
    rows_done, chunks_done = done_rows, 0

    def finish(item: tuple, cells: list[list[Any]]) -> None:
        nonlocal rows_done, chunks_done
        shaped, _, reasons, _ = item
        if len(shaped) != len(cells):
            raise RuntimeError(f"a worker returned {len(cells)} rows for {len(shaped)}")
        writer.append(list(map(operator.add, shaped, cells)))
        summary.add(reasons, cells)
        rows_done += len(shaped)
        chunks_done += 1
        if writer.fmt in RESUMABLE:
            state = {"signature": _signature(input_path), "chunk_rows": chunk_rows,
                     "rows_done": rows_done, "partial_bytes": writer.flush()}
            tmp = state_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(state), encoding="utf-8")
            os.replace(tmp, state_path)
        if task is not None:
            rate = (rows_done - done_rows) / max(time.perf_counter() - start, 1e-9)
            bar.update(task, completed=min(table.progress(), 1.0),
                       description=f"{rows_done:,} rows, {rate:,.0f} rows/s")
        if on_chunk is not None:
            on_chunk(rows_done, min(table.progress(), 1.0) if table.progress else 0.0)
        if stop_after_chunks and chunks_done >= stop_after_chunks:
            raise KeyboardInterrupt("stopped after the requested number of chunks")

    bar = _progress_bar(show)
    try:
        with bar:
            task = bar.add_task("scoring", total=1.0) if show else None
            pending: deque = deque()  # at most two chunks per worker in flight: memory stays flat
            for item in chunks():
                if pool is None:
                    finish(item, score_chunk(clf, *item[1:]))
                    continue
                pending.append((item, pool.apply_async(_score_in_worker, (item[1:],))))
                if len(pending) >= 2 * workers:
                    done, result = pending.popleft()
                    finish(done, result.get())
            while pending:
                done, result = pending.popleft()
                finish(done, result.get())
        writer.commit()
        state_path.unlink(missing_ok=True)
    except BaseException:
        writer.abort()
        raise
    finally:
        if pool:
            pool.terminate()
    summary.seconds = time.perf_counter() - start
    return summary


def _progress_bar(show: bool):
    from contextlib import nullcontext

    if not show:
        return nullcontext()
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                    TimeRemainingColumn(), transient=True)


# --- report --------------------------------------------------------------------------------------
def _bars(title: str, items: list[tuple[str, float]], fmt: str = "{:,.0f}") -> str:
    """A horizontal bar chart as inline SVG: no scripts, no CDN, opens anywhere."""
    from html import escape

    top = max((v for _, v in items), default=0) or 1
    height = 24 * len(items) + 10
    bars = "".join(
        f'<text x="0" y="{24 * i + 20}">{escape(name)}</text>'
        f'<rect x="230" y="{24 * i + 6}" width="{400 * v / top:.1f}" height="18" fill="#4a7bd0"/>'
        f'<text x="{236 + 400 * v / top:.1f}" y="{24 * i + 20}">{fmt.format(v)}</text>'
        for i, (name, v) in enumerate(items))
    return f'<h2>{escape(title)}</h2><svg width="720" height="{height}" font-size="13">{bars}</svg>'


def write_report(summary: Summary, path: Path, source: Path) -> None:
    """The run's summary as a self-contained HTML page, written atomically."""
    from html import escape

    d = summary.to_dict()
    by_reason = [(k, v["mismatch"] / v["rows"]) for k, v in d["mismatch_by_reason"].items() if v["rows"]][:15]
    body = "".join([
        f"<h1>ticket-nlp: {escape(source.name)}</h1>",
        f"<p>{d['rows']:,} rows, {d['scored']:,} scored, {d['needs_review']:,} need review, "
        f"mismatch rate {d['mismatch_rate']:.1%}, {d['seconds']} s.</p>",
        _bars("Rows per label", sorted(summary.labels.items(), key=lambda kv: -kv[1])),
        _bars("Row status", sorted(summary.statuses.items(), key=lambda kv: -kv[1])),
        _bars("Mismatch rate per claimed reason", by_reason, "{:.1%}"),
        f"<pre>{escape(json.dumps(d, ensure_ascii=False, indent=1))}</pre>",
    ])
    page = f'<!doctype html><meta charset="utf-8"><title>ticket-nlp report</title><body style="font-family:sans-serif">{body}</body>'
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
