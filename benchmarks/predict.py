"""Prediction speed: ticket-nlp's Classifier against a plain jieba pipeline, in the same run.

    python benchmarks/predict.py [--rows 100000] [--texts FILE.csv --column review] [--repeats 3]

Baseline: ``jieba.lcut`` tokenizer + TfidfVectorizer + LogisticRegression, trained on the same
train split, predicting labels in one process. Candidates: ``Classifier.predict`` (labels,
probabilities, evidence spans, mismatch check) in one process, and across all cores with one
forked worker per core. Prints medians of ``--repeats`` runs and ratios to the baseline, then the
single-text latency of ``Classifier.predict`` (median, p95, p99 over 2,000 calls).
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

from ticket_nlp.data import load_labelled  # noqa: E402
from ticket_nlp.model import Classifier, build_pipeline  # noqa: E402

_WORKER_CLF: Classifier | None = None


def _worker_predict(chunk: list[str]) -> list[tuple[str, float, str, str]]:
    """What a batch job keeps per row: label, confidence, mismatch status, evidence terms."""
    return [(p.label, p.confidence, p.mismatch.status, " ".join(e.term for e in p.evidence))
            for p in _WORKER_CLF.predict(chunk)]


def predict_parallel(clf: Classifier, texts: list[str], workers: int, chunk: int = 2000) -> int:
    global _WORKER_CLF
    _WORKER_CLF = clf  # inherited by forked workers: the model is not pickled per task
    pieces = [texts[i:i + chunk] for i in range(0, len(texts), chunk)]
    with get_context("fork").Pool(workers) as pool:
        return sum(len(r) for r in pool.imap(_worker_predict, pieces))


def timed(fn, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--texts", type=Path, help="CSV of texts to score instead of the corpus")
    ap.add_argument("--column", default="review")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    data = load_labelled(ROOT / "data" / "tickets.csv")
    train = data.split("train")
    if args.texts:
        with open(args.texts, encoding="utf-8", newline="") as f:
            pool = [row[args.column] for row in csv.DictReader(f)]
    else:
        pool = data.texts
    texts = (pool * (args.rows // len(pool) + 1))[: args.rows]
    print(f"{len(texts)} texts, mean {statistics.mean(map(len, texts)):.0f} chars, "
          f"{os.cpu_count()} cores, {args.repeats} repeats (medians)")

    import jieba

    jieba.initialize()
    baseline = make_pipeline(TfidfVectorizer(tokenizer=jieba.lcut, token_pattern=None, lowercase=False),
                             LogisticRegression(max_iter=1000))
    baseline.fit(train.texts, train.labels)
    pipeline = build_pipeline()
    pipeline.fit(train.texts, train.labels)
    clf = Classifier(pipeline, {})

    t_base = timed(lambda: baseline.predict(texts), args.repeats)
    rows = [("baseline: jieba.lcut + TF-IDF + LR, 1 process", t_base)]
    rows.append(("Classifier.predict, 1 process", timed(lambda: clf.predict(texts), args.repeats)))
    rows.append(("Classifier.predict, labels only, 1 process",
                 timed(lambda: clf.predict(texts, explain=False), args.repeats)))
    workers = os.cpu_count() or 1
    rows.append((f"Classifier.predict, {workers} processes",
                 timed(lambda: predict_parallel(clf, texts, workers), args.repeats)))
    print(f"{'pipeline':<50} {'seconds':>8} {'texts/s':>10} {'vs baseline':>12}")
    for name, seconds in rows:
        print(f"{name:<50} {seconds:8.2f} {len(texts) / seconds:10.0f} {t_base / seconds:11.1f}x")

    latencies = []
    for text in texts[:2000]:
        start = time.perf_counter()
        clf.predict([text])
        latencies.append((time.perf_counter() - start) * 1000)
    q = statistics.quantiles(latencies, n=100)
    print(f"single-text Classifier.predict: median {statistics.median(latencies):.3f} ms, "
          f"p95 {q[94]:.3f} ms, p99 {q[98]:.3f} ms")


if __name__ == "__main__":
    main()
