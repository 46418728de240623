"""Labelled data in: the shipped corpus, real-text evaluation files, and a team's own exports.

All of them become a ``LabelledSet``. Column names are found from the headers each format uses
and can be given explicitly; label values can be mapped (a team's 质量 -> quality_defect). Rows
with a bad label are reported with their line numbers rather than dropped silently.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ticket_nlp.config import LABELS, LABELS_ZH

TEXT_COLUMNS = ("description", "text", "问题描述", "买家退款说明", "售后备注", "退款说明", "review")
LABEL_COLUMNS = ("label", "primary", "标签", "正确标签", "correct_label")
CLAIM_COLUMNS = ("claimed_reason", "claimed", "买家退款原因", "售后原因", "申请原因", "退货原因")
# Chinese label names map to ours by default, so a team can label in 质量问题/物流问题/…
DEFAULT_LABEL_MAP = {zh: label for label, zh in LABELS_ZH.items()} | {"尺码问题": "size_exchange",
                                                                      "七天无理由退货": "no_reason_return"}


class DataError(ValueError):
    """The file cannot be used as labelled data; the message says which rows or columns."""


@dataclass
class LabelledSet:
    texts: list[str]
    labels: list[str]
    claimed: list[str | None] = field(default_factory=list)
    expect_mismatch: list[int | None] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)
    extra: dict[str, list[str]] = field(default_factory=dict)
    source: str = ""
    sha256: str = ""

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, keep: Sequence[int]) -> LabelledSet:
        pick = lambda xs: [xs[i] for i in keep] if xs else []  # noqa: E731
        return LabelledSet(pick(self.texts), pick(self.labels), pick(self.claimed),
                           pick(self.expect_mismatch), pick(self.splits),
                           {k: pick(v) for k, v in self.extra.items()}, self.source, self.sha256)

    def split(self, name: str) -> LabelledSet:
        if not self.splits:
            raise DataError(f"{self.source} has no split column; cannot select split {name!r}")
        return self.subset([i for i, s in enumerate(self.splits) if s == name])

    @staticmethod
    def concat(parts: Sequence[LabelledSet]) -> LabelledSet:
        out = LabelledSet([], [], source=" + ".join(p.source for p in parts))
        for p in parts:
            out.texts += p.texts
            out.labels += p.labels
            out.claimed += p.claimed or [None] * len(p)
            out.expect_mismatch += p.expect_mismatch or [None] * len(p)
            out.splits += p.splits or [""] * len(p)
        out.sha256 = hashlib.sha256("".join(p.sha256 for p in parts).encode()).hexdigest()
        return out


def decode_bytes(raw: bytes, encoding: str | None = None) -> str:
    """UTF-8 (with or without BOM), else GB18030 (a superset of GBK, what Excel on Chinese Windows writes)."""
    if encoding:
        return raw.decode(encoding)
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    raise DataError("cannot decode the file as UTF-8 or GB18030; pass the encoding explicitly")


def read_rows(path: str | Path, sheet: str | None = None, encoding: str | None = None) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a .csv/.tsv/.xlsx file, every cell as a string."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        import openpyxl

        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
        ws = book[sheet] if sheet else book.worksheets[0]
        rows = [["" if c is None else str(c) for c in r] for r in ws.iter_rows(values_only=True)]
        book.close()
    elif suffix in (".csv", ".tsv", ".txt"):
        text = decode_bytes(path.read_bytes(), encoding)
        delimiter = "\t" if suffix == ".tsv" else ","
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    else:
        raise DataError(f"{path}: unsupported file type {suffix!r} (use .csv, .tsv or .xlsx)")
    if not rows:
        raise DataError(f"{path}: the file is empty")
    header = [h.strip() for h in rows[0]]
    return header, rows[1:]


def _find(header: list[str], given: str | None, candidates: Sequence[str], what: str, path: Path,
          required: bool = True) -> int | None:
    if given:
        if given not in header:
            raise DataError(f"{path}: no {what} column {given!r}; headers are {header}")
        return header.index(given)
    for name in candidates:
        if name in header:
            return header.index(name)
    if required:
        raise DataError(f"{path}: cannot find the {what} column among {header}; name it with an option")
    return None


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_labelled(path: str | Path, text_col: str | None = None, label_col: str | None = None,
                  claimed_col: str | None = None, label_map: dict[str, str] | None = None,
                  sheet: str | None = None, encoding: str | None = None) -> LabelledSet:
    """Read a labelled file: the shipped corpus, a realdev-style TSV, or a team's export."""
    path = Path(path)
    header, rows = read_rows(path, sheet, encoding)
    ti = _find(header, text_col, TEXT_COLUMNS, "text", path)
    li = _find(header, label_col, LABEL_COLUMNS, "label", path)
    ci = _find(header, claimed_col, CLAIM_COLUMNS, "claimed reason", path, required=False)
    mi = header.index("expect_mismatch") if "expect_mismatch" in header else None
    si = header.index("split") if "split" in header else None
    mapping = {**DEFAULT_LABEL_MAP, **(label_map or {})}
    out = LabelledSet([], [], source=str(path), sha256=file_sha256(path))
    keep_extra = [h for h in ("product_category", "product", "platform", "ticket_id", "secondary_labels",
                              "boundary", "id") if h in header]
    out.extra = {h: [] for h in keep_extra}
    bad: list[str] = []
    for line, row in enumerate(rows, start=2):
        row = row + [""] * (len(header) - len(row))
        raw_label = row[li].strip()
        label = mapping.get(raw_label, raw_label)
        if label not in LABELS:
            bad.append(f"line {line}: {raw_label!r}")
            continue
        out.texts.append(row[ti])
        out.labels.append(label)
        if ci is not None:
            out.claimed.append(row[ci].strip() or None)
        if mi is not None:
            out.expect_mismatch.append(int(row[mi]) if row[mi].strip() in ("0", "1") else None)
        if si is not None:
            out.splits.append(row[si].strip())
        for h in keep_extra:
            out.extra[h].append(row[header.index(h)])
    if bad:
        shown = "; ".join(bad[:20]) + (f"; … {len(bad) - 20} more" if len(bad) > 20 else "")
        raise DataError(f"{path}: {len(bad)} rows have a label outside {list(LABELS)} "
                        f"(map them with --label-map): {shown}")
    return out
