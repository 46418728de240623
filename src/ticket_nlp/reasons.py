"""Claimed reasons: the platform menu string a buyer picked -> the label(s) it claims.

The mapping lives in an editable YAML file (``resources/reasons.yaml`` or ``$TICKET_NLP_REASONS``)
so ops can add a platform's wording without code. Unknown strings are reported, never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from ticket_nlp.config import LABELS, reasons_path
from ticket_nlp.text import nfkc, to_simplified

_SLASHES = re.compile(r"\s*[/／、|]\s*")
_DASHES = re.compile(r"\s*[-—–_:：]\s*")
MEMO_SIZE = 100_000  # distinct claimed-reason strings remembered by a ReasonMap


@lru_cache(maxsize=4096)
def reason_key(reason: str) -> str:
    """Form-insensitive key: width, script, spaces and slash style do not matter."""
    key = to_simplified(nfkc(reason)).strip().lower()
    key = _SLASHES.sub("/", key)
    return re.sub(r"\s+", "", key)


@dataclass(frozen=True)
class ReasonMap:
    """Lookup from menu string to the labels that string accepts."""

    labels_by_key: dict[str, tuple[str, ...]]
    display: dict[str, tuple[str, ...]] = field(default_factory=dict)
    prefixes: tuple[str, ...] = ()
    source: str = ""
    _memo: dict[str, tuple[str, ...] | None] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def load(cls, path: str | Path | None = None) -> ReasonMap:
        path = Path(path) if path else reasons_path()
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        entries = doc.get("reasons") or {}
        display: dict[str, tuple[str, ...]] = {}
        for reason, labels in entries.items():
            labels = tuple([labels] if isinstance(labels, str) else labels)
            bad = [x for x in labels if x not in LABELS]
            if not labels or bad:
                raise ValueError(f"{path}: reason {reason!r} maps to {bad or labels}, not one of {LABELS}")
            display[str(reason)] = labels
        prefixes = tuple(reason_key(p) for p in doc.get("refund_type_prefixes") or ())
        keys = {reason_key(r): labels for r, labels in display.items()}
        return cls(keys, display, tuple(sorted(prefixes, key=len, reverse=True)), str(path))

    def lookup(self, reason: str | None) -> tuple[str, ...] | None:
        """Labels the claimed reason accepts; ``None`` when the string is not in the mapping.

        Remembered per string: an export repeats a few dozen menu strings over millions of rows."""
        if reason is None:
            return None
        try:
            return self._memo[reason]
        except KeyError:
            found = self._lookup(reason)
        if len(self._memo) < MEMO_SIZE:
            self._memo[reason] = found
        return found

    def _lookup(self, reason: str) -> tuple[str, ...] | None:
        key = reason_key(reason)
        if key in self.labels_by_key:
            return self.labels_by_key[key]
        for prefix in self.prefixes:  # 退货退款-质量问题 -> 质量问题
            if key.startswith(prefix):
                rest = _DASHES.sub("", key[len(prefix):len(prefix) + 1]) + key[len(prefix) + 1:]
                if rest in self.labels_by_key:
                    return self.labels_by_key[rest]
        return None

    def __len__(self) -> int:
        return len(self.display)
