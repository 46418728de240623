"""Product families: whether LABELING.md's fit rule can apply to the item a ticket is about.

"太小了" is ``size_exchange`` for a shirt and ``quality_defect`` (not as described) for fruit; only
the product tells. When a ticket names its product, its family is evidence the text cannot give:
the model's probabilities are reweighted by how often each label occurs in that family of the
training corpus (Bayes' rule, the family taken as evidence the words do not already carry), so a
size complaint about fruit is not read as a fit problem, and one about trousers more surely is.

The keywords live in ``resources/product_families.yaml``. Training stores the lists it used with
the model, so scoring reads products exactly as training measured them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ticket_nlp.config import LABELS, RESOURCES
from ticket_nlp.text import nfkc, to_simplified

MIN_FAMILY_ROWS = 200  # a family with fewer training rows gets no prior: too few to measure
MEMO_SIZE = 100_000  # distinct product strings remembered (an export repeats its catalogue)


def product_families_path() -> Path:
    return Path(str(RESOURCES / "product_families.yaml"))


@dataclass(frozen=True)
class ProductFamilies:
    """Product name or category -> family, by the longest keyword it contains."""

    keywords: dict[str, list[str]]
    _by_length: tuple[tuple[str, str], ...] = field(default=(), compare=False, repr=False)
    _memo: dict[str, str | None] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        pairs = [(_key(w), fam) for fam, words in self.keywords.items() for w in words if _key(w)]
        object.__setattr__(self, "_by_length", tuple(sorted(set(pairs), key=lambda p: -len(p[0]))))

    @classmethod
    def load(cls, path: str | Path | None = None) -> ProductFamilies:
        path = Path(path) if path else product_families_path()
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        families = doc.get("families") or {}
        if not isinstance(families, dict) or not families or not all(isinstance(v, list) for v in families.values()):
            raise ValueError(f"{path}: want `families:` mapping each family name to a list of keywords")
        return cls({str(fam): [str(w) for w in words] for fam, words in families.items()})

    def family(self, product: object) -> str | None:
        """The family of a product string; ``None`` when there is none, or no keyword or two
        families' keywords of the same length match."""
        if not isinstance(product, str) or not product.strip():
            return None
        try:
            return self._memo[product]
        except KeyError:
            found = self._family(product)
        if len(self._memo) < MEMO_SIZE:
            self._memo[product] = found
        return found

    def _family(self, product: str) -> str | None:
        key = _key(product)
        found, length = None, 0
        for word, fam in self._by_length:
            if len(word) < length:
                break
            if word in key:
                if found is not None and found != fam:
                    return None  # two families at the same length: ambiguous
                found, length = fam, len(word)
        return found


def _key(text: str) -> str:
    return to_simplified(nfkc(text)).strip().lower()


def family_factors(labels: Sequence[str], families: Sequence[str | None],
                   min_rows: int = MIN_FAMILY_ROWS) -> dict[str, dict[str, float]]:
    """P(label | family) / P(label) on the training rows, add-one smoothed, for each family with
    at least ``min_rows`` rows. Multiplying the text model's probabilities by these and
    renormalising gives P(label | text, family) when the family tells nothing more about the words
    than the label does."""
    overall = Counter(labels)
    total = sum(overall.values())
    out = {}
    for fam in sorted({f for f in families if f is not None}):
        counts = Counter(lab for lab, f in zip(labels, families, strict=True) if f == fam)
        n = sum(counts.values())
        if n < min_rows:
            continue
        out[fam] = {lab: round(((counts[lab] + 1) / (n + len(LABELS))) / (overall[lab] / total), 4)
                    for lab in LABELS if overall[lab]}
    return out
