"""Reading tables: the exports and labelled files people have, streamed row by row.

CSV/TSV (UTF-8, UTF-8 with BOM, GBK/GB18030 detected, or a given encoding), XLSX, Parquet and
JSONL all become a ``Table``: a header and a row iterator. Batch scoring streams them; training
data reads them whole. Errors name the file, the line where known, and what is wrong.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMATS = {".csv": "csv", ".tsv": "tsv", ".txt": "tsv", ".xlsx": "xlsx", ".parquet": "parquet", ".jsonl": "jsonl"}
BATCH_ROWS = 5000  # rows per Parquet read batch
csv.field_size_limit(1 << 24)


class TableError(ValueError):
    """The file cannot be read as a table; the message names the file, the line where known, and why."""


def file_format(path: Path, what: str) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise TableError(f"{path}: cannot {what} {path.suffix or 'files without an extension'}; "
                         f"use one of {', '.join(sorted(FORMATS))}")
    return fmt


# --- reading -------------------------------------------------------------------------------------
def detect_encoding(path: Path, sample_bytes: int = 1 << 20) -> str:
    """utf-8-sig, utf-8, or gb18030 (what Excel on Chinese Windows writes, as GBK), from a sample."""
    with open(path, "rb") as f:
        sample = f.read(sample_bytes)
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        return "gb18030"


@dataclass
class Table:
    """An input being read: its header and a row iterator (cells as read)."""

    header: list[str]
    rows: Iterator[list[Any]]
    progress: Any = None  # callable -> fraction read, when the reader can tell
    encoding: str | None = None


def _read_delimited(path: Path, delimiter: str, encoding: str | None) -> Table:
    enc = encoding or detect_encoding(path)
    size = max(os.path.getsize(path), 1)
    raw = open(path, "rb")  # noqa: SIM115 - closed by the row generator
    # decoding and parsing both run in C; a decoding error is located afterwards (bad_line)
    reader = csv.reader(io.TextIOWrapper(raw, encoding=enc, newline=""), delimiter=delimiter)

    def fail(err: Exception) -> TableError:
        raw.close()
        if isinstance(err, UnicodeDecodeError):
            number, reason = bad_line(path, enc)
            return TableError(f"{path}, line {number}: not valid {enc} ({reason}); pass --encoding")
        return TableError(f"{path}, line {reader.line_num}: {err}")

    try:
        header = next(reader)
    except StopIteration:
        raw.close()
        raise TableError(f"{path}: the file is empty") from None
    except (csv.Error, UnicodeDecodeError) as err:
        raise fail(err) from err

    def rows() -> Iterator[list[Any]]:
        with raw:
            try:
                yield from reader
            except (csv.Error, UnicodeDecodeError) as err:
                raise fail(err) from err

    return Table([h.strip() for h in header], rows(), lambda: 1.0 if raw.closed else raw.tell() / size, enc)


def bad_line(path: Path, encoding: str) -> tuple[int, str]:
    """The first line that does not decode, and why (a newline byte never occurs inside a UTF-8
    or GB18030 character, so lines can be decoded one by one)."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                line.decode(encoding)
            except UnicodeDecodeError as err:
                return number, f"{err.reason} at byte {err.start}"
    return 0, "undecodable bytes"


def _read_xlsx(path: Path, sheet: str | None) -> Table:
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # zip/xml errors: a damaged or mislabelled file
        raise TableError(f"{path}: not a readable .xlsx file ({err})") from err
    if sheet and sheet not in book.sheetnames:
        raise TableError(f"{path}: no sheet {sheet!r}; sheets are {book.sheetnames}")
    ws = book[sheet] if sheet else book.worksheets[0]
    it = ws.iter_rows(values_only=True)
    header = next(it, None)
    if header is None:
        raise TableError(f"{path}: sheet {ws.title!r} is empty")
    total = max(ws.max_row or 1, 1)
    seen = [0]

    def rows() -> Iterator[list[Any]]:
        for row in it:
            seen[0] += 1
            yield ["" if v is None else v for v in row]
        book.close()

    return Table(["" if h is None else str(h).strip() for h in header], rows(), lambda: seen[0] / total)


def _read_parquet(path: Path) -> Table:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as err:
        raise TableError(f"{path}: not a readable Parquet file ({err})") from err
    total = max(pf.metadata.num_rows, 1)
    seen = [0]

    def rows() -> Iterator[list[Any]]:
        for batch in pf.iter_batches(batch_size=BATCH_ROWS):
            for row in zip(*(col.to_pylist() for col in batch.columns), strict=True):
                seen[0] += 1
                yield ["" if v is None else v for v in row]

    return Table(list(pf.schema_arrow.names), rows(), lambda: seen[0] / total)


def _read_jsonl(path: Path, encoding: str | None) -> Table:
    enc = encoding or detect_encoding(path)
    f = open(path, encoding=enc)  # noqa: SIM115 - closed by the generator
    size = max(os.path.getsize(path), 1)
    lines = enumerate(f, start=1)

    def parse(number: int, line: str) -> dict[str, Any]:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise TableError(f"{path}, line {number}: not JSON ({err.msg})") from err
        if not isinstance(obj, dict):
            raise TableError(f"{path}, line {number}: expected a JSON object, got {type(obj).__name__}")
        return obj

    first = next(((n, line) for n, line in lines if line.strip()), None)
    if first is None:
        f.close()
        raise TableError(f"{path}: the file is empty")
    head = parse(*first)
    header = list(head)

    def rows() -> Iterator[list[Any]]:
        with f:
            for obj in [head]:
                yield [obj.get(k, "") for k in header] + _extra_keys(obj, header)
            for number, line in lines:
                if line.strip():
                    obj = parse(number, line)
                    yield [obj.get(k, "") for k in header] + _extra_keys(obj, header)

    return Table(header, rows(), lambda: f.tell() / size if not f.closed else 1.0, enc)


def _extra_keys(obj: dict[str, Any], header: list[str]) -> list[Any]:
    extra = {k: v for k, v in obj.items() if k not in header}
    return [json.dumps(extra, ensure_ascii=False)] if extra else []


def open_table(path: Path, sheet: str | None = None, encoding: str | None = None) -> Table:
    if not path.exists():
        raise TableError(f"{path}: no such file")
    fmt = file_format(path, "read")
    if fmt in ("csv", "tsv"):
        return _read_delimited(path, "," if fmt == "csv" else "\t", encoding)
    if fmt == "xlsx":
        return _read_xlsx(path, sheet)
    if fmt == "parquet":
        return _read_parquet(path)
    return _read_jsonl(path, encoding)


def find_column(header: list[str], given: str | None, candidates: Sequence[str], what: str,
                path: Path, required: bool = True) -> int | None:
    """The column given by name, else the first known header present (exact, then any case)."""
    if given:
        if given not in header:
            raise TableError(f"{path}: no column {given!r} for the {what}; headers seen: {header}")
        return header.index(given)
    for name in candidates:
        if name in header:
            return header.index(name)
    lowered = [h.lower() for h in header]
    for name in candidates:
        if name.lower() in lowered:
            return lowered.index(name.lower())
    if required:
        raise TableError(f"{path}: no {what} column found. Headers seen: {header}. "
                         f"Known names: {', '.join(candidates)}; name yours with an option (--text-col …)")
    return None
