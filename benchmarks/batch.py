"""End-to-end batch scoring: rows/s and peak memory of `ticket-nlp score`, against a plain
single-process jieba pipeline measured in the same run.

    python benchmarks/batch.py [--rows 1000000] [--xlsx-rows 100000] [--baseline-rows 100000]

1. Writes a CSV export of --rows rows (corpus descriptions, varied with masked order numbers,
   emoji and claimed reasons) and one of half that size.
2. Scores both with `ticket-nlp score` in a subprocess (all cores), sampling the resident memory
   of the whole process tree; prints rows/s and peak RSS, so "flat when the file doubles" is read
   off the two lines.
3. Scores Parquet (--rows) and XLSX (--xlsx-rows) exports of the same rows.
4. Baseline: read the CSV with the csv module, `jieba.lcut` + TF-IDF + logistic regression in one
   process, write a CSV, on --baseline-rows rows; the ratio compares rows/s.
Needs a trained model (`make train`).
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, from /proc."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
            with open(f"/proc/{p}/task/{p}/children") as f:
                stack.extend(int(c) for c in f.read().split())
        except (OSError, StopIteration):
            continue
    return total / 1024


def run_scoring(src: Path, out: Path) -> tuple[float, float]:
    """Seconds and peak tree RSS (MB) of one `ticket-nlp score` run."""
    start = time.perf_counter()
    proc = subprocess.Popen([str(BIN / "ticket-nlp"), "score", str(src), "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = [0.0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss_mb(proc.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample)
    sampler.start()
    _, err = proc.communicate()
    sampler.join()
    if proc.returncode:
        raise SystemExit(f"scoring failed: {err.decode()[-2000:]}")
    return time.perf_counter() - start, peak[0]


def make_rows(n: int, seed: int = 1) -> list[list[str]]:
    with open(ROOT / "data" / "tickets.csv", encoding="utf-8", newline="") as f:
        corpus = list(csv.DictReader(f))
    rng = random.Random(seed)
    extras = ["", "", "", " 订单号2025****{:04d}", " 😡", "！！", " 电话138****{:04d}", "，麻烦尽快处理"]
    rows = []
    for i in range(n):
        r = corpus[rng.randrange(len(corpus))]
        extra = rng.choice(extras).format(rng.randrange(10000))
        rows.append([str(i), r["platform"], r["product"], r["claimed_reason"], r["description"] + extra,
                     f"{rng.uniform(5, 900):.2f}"])
    return rows


HEADER = ["售后编号", "平台", "商品名称", "售后原因", "问题描述", "退款金额(元)"]  # the product is read too
TEXT_AT = HEADER.index("问题描述")


def write_csv(path: Path, rows: list[list[str]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows(rows)


def baseline_rows_per_second(src: Path, out: Path) -> float:
    import jieba
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    jieba.setLogLevel(20)
    with open(ROOT / "data" / "tickets.csv", encoding="utf-8", newline="") as f:
        train = [r for r in csv.DictReader(f) if r["split"] == "train"]
    model = make_pipeline(TfidfVectorizer(tokenizer=jieba.lcut, token_pattern=None, lowercase=False),
                          LogisticRegression(max_iter=1000))
    model.fit([r["description"] for r in train], [r["label"] for r in train])
    start = time.perf_counter()
    with open(src, encoding="utf-8", newline="") as fi, open(out, "w", encoding="utf-8", newline="") as fo:
        reader, writer = csv.reader(fi), csv.writer(fo)
        writer.writerow(next(reader) + ["label"])
        chunk: list[list[str]] = []
        for row in reader:
            chunk.append(row)
            if len(chunk) == 5000:
                writer.writerows(r + [y] for r, y in zip(chunk, model.predict([r[TEXT_AT] for r in chunk]), strict=True))
                chunk = []
        if chunk:
            writer.writerows(r + [y] for r, y in zip(chunk, model.predict([r[TEXT_AT] for r in chunk]), strict=True))
    seconds = time.perf_counter() - start
    return (sum(1 for _ in open(src, encoding="utf-8")) - 1) / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--xlsx-rows", type=int, default=100_000)
    ap.add_argument("--baseline-rows", type=int, default=100_000)
    args = ap.parse_args()
    print(f"{os.cpu_count()} cores; model {os.environ.get('TICKET_NLP_MODEL', 'models/ticket-classifier')}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = make_rows(args.rows)
        results = []
        for n in (args.rows // 2, args.rows):
            src = tmp / f"export_{n}.csv"
            write_csv(src, rows[:n])
            seconds, peak = run_scoring(src, tmp / f"scored_{n}.csv")
            results.append((f"csv, {n:,} rows", n, seconds, peak))
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({h: [r[i] for r in rows] for i, h in enumerate(HEADER)}), tmp / "export.parquet")
        seconds, peak = run_scoring(tmp / "export.parquet", tmp / "scored.parquet")
        results.append((f"parquet, {args.rows:,} rows", args.rows, seconds, peak))
        import openpyxl

        book = openpyxl.Workbook(write_only=True)
        sheet = book.create_sheet("export")
        sheet.append(HEADER)
        for r in rows[: args.xlsx_rows]:
            sheet.append(r)
        book.save(tmp / "export.xlsx")
        seconds, peak = run_scoring(tmp / "export.xlsx", tmp / "scored.xlsx")
        results.append((f"xlsx, {args.xlsx_rows:,} rows", args.xlsx_rows, seconds, peak))

        write_csv(tmp / "baseline.csv", rows[: args.baseline_rows])
        base = baseline_rows_per_second(tmp / "baseline.csv", tmp / "baseline.out.csv")
        print(f"baseline: csv + jieba.lcut + TF-IDF + LR, 1 process, {args.baseline_rows:,} rows: {base:,.0f} rows/s")
        print(f"{'ticket-nlp score':<32} {'seconds':>8} {'rows/s':>9} {'peak RSS MB':>12} {'vs baseline':>12}")
        for name, n, seconds, peak in results:
            print(f"{name:<32} {seconds:8.1f} {n / seconds:9,.0f} {peak:12,.0f} {n / seconds / base:11.1f}x")


if __name__ == "__main__":
    main()
