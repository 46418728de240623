"""Labelled data in: the shipped corpus, real-text evaluation files, and a team's own exports.

All of them become a ``LabelledSet``. Column names are found from the headers each format uses
and can be given explicitly; label values can be mapped (a team's 质量 -> quality_defect). Rows
with a bad label are reported with their line numbers rather than dropped silently.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ticket_nlp.config import LABELS, LABELS_ZH
from ticket_nlp.tables import TableError, find_column, open_table

TEXT_COLUMNS = ("description", "text", "问题描述", "买家退款说明", "售后备注", "退款说明", "review")
LABEL_COLUMNS = ("label", "primary", "标签", "正确标签", "correct_label")
PRODUCT_COLUMNS = ("product_category", "product")  # what names the item, most telling first
CLAIM_COLUMNS = ("claimed_reason", "claimed", "买家退款原因", "售后原因", "申请原因", "退货原因")
# Chinese label names map to ours by default, so a team can label in 质量问题/物流问题/…
DEFAULT_LABEL_MAP = {zh: label for label, zh in LABELS_ZH.items()} | {"尺码问题": "size_exchange",
                                                                      "七天无理由退货": "no_reason_return"}


DataError = TableError  # a labelled file that cannot be used; the message says which rows or columns


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

    @property
    def products(self) -> list[str | None] | None:
        """Per row, what names the product: its category when the file has one, else its name."""
        columns = [self.extra[c] for c in PRODUCT_COLUMNS if c in self.extra]
        if not columns:
            return None
        return [next((str(v[i]).strip() for v in columns if str(v[i]).strip()), None) for i in range(len(self))]

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
        # extra columns (product, category …) of any part, blank where a part lacks them
        out.extra = {k: [] for p in parts for k in p.extra}
        for p in parts:
            for k, column in out.extra.items():
                column += p.extra.get(k) or [""] * len(p)
            out.texts += p.texts
            out.labels += p.labels
            out.claimed += p.claimed or [None] * len(p)
            out.expect_mismatch += p.expect_mismatch or [None] * len(p)
            out.splits += p.splits or [""] * len(p)
        out.sha256 = hashlib.sha256("".join(p.sha256 for p in parts).encode()).hexdigest()
        return out


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_labelled(path: str | Path, text_col: str | None = None, label_col: str | None = None,
                  claimed_col: str | None = None, label_map: dict[str, str] | None = None,
                  sheet: str | None = None, encoding: str | None = None) -> LabelledSet:
    """Read a labelled file: the shipped corpus, a realdev-style TSV, or a team's export."""
    path = Path(path)
    table = open_table(path, sheet, encoding)
    header = table.header
    ti = find_column(header, text_col, TEXT_COLUMNS, "text", path)
    li = find_column(header, label_col, LABEL_COLUMNS, "label", path)
    ci = find_column(header, claimed_col, CLAIM_COLUMNS, "claimed reason", path, required=False)
    mi = header.index("expect_mismatch") if "expect_mismatch" in header else None
    si = header.index("split") if "split" in header else None
    mapping = {**DEFAULT_LABEL_MAP, **(label_map or {})}
    out = LabelledSet([], [], source=str(path), sha256=file_sha256(path))
    keep_extra = [h for h in ("product_category", "product", "platform", "ticket_id", "secondary_labels",
                              "boundary", "id") if h in header]
    out.extra = {h: [] for h in keep_extra}
    bad: list[str] = []
    for line, cells in enumerate(table.rows, start=2):
        row = [str(c) for c in cells] + [""] * (len(header) - len(cells))
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
                        f"(map them with --label-map, or data.label_map in a --config file): {shown}")
    return out
