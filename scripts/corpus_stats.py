"""Print the figures the data card (data/README.md) reports about data/tickets.csv.

Run: python scripts/corpus_stats.py
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from scripts.assemble_corpus import near_duplicate_groups  # noqa: E402
from ticket_nlp.reasons import ReasonMap  # noqa: E402
from ticket_nlp.text import to_simplified  # noqa: E402


def main() -> None:
    with open(ROOT / "data" / "tickets.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    n = len(rows)
    texts = [r["description"] for r in rows]
    groups = Counter(near_duplicate_groups(texts))
    in_pairs = sum(size for size in groups.values() if size > 1)
    reasons = ReasonMap.load()
    contradicted = sum(1 for r in rows if r["label"] != "other"
                       and "other" not in reasons.lookup(r["claimed_reason"])
                       and r["label"] not in reasons.lookup(r["claimed_reason"]))
    lengths = [len(t) for t in texts]
    print(f"rows {n}; exact duplicates {n - len(set(texts))}; rows in near-duplicate groups {in_pairs} "
          f"({in_pairs / n:.2%})")
    for name, key in (("label", "label"), ("split", "split"), ("platform", "platform"), ("boundary", "boundary")):
        print(f"{name}: " + ", ".join(f"{k or '-'} {v}" for k, v in Counter(r[key] for r in rows).most_common()))
    print("label x split: " + ", ".join(f"{k} {v}" for k, v in sorted(Counter((r['label'], r['split']) for r in rows).items())))
    cats = Counter(r["product_category"] for r in rows)
    print(f"categories {len(cats)}: " + ", ".join(f"{k} {v}" for k, v in cats.most_common()))
    print(f"lengths: min {min(lengths)}, median {sorted(lengths)[n // 2]}, max {max(lengths)}; "
          f"under 8 chars {sum(x < 8 for x in lengths) / n:.1%}; 200+ chars {sum(x >= 200 for x in lengths)}")
    print(f"traditional script {sum(to_simplified(t) != t for t in texts) / n:.1%}; "
          f"with secondary labels {sum(bool(r['secondary_labels']) for r in rows)}")
    print(f"claimed reasons {len({r['claimed_reason'] for r in rows})} distinct; contradicted {contradicted / n:.1%}; "
          f"claim 其他 {sum(r['claimed_reason'] == '其他' for r in rows)}")


if __name__ == "__main__":
    main()
