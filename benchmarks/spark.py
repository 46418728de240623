"""Spark engine throughput: `score --engine spark` in local mode against the local engine, same input,
same run, and a check that both outputs are equal.

    python benchmarks/spark.py [--rows 1000000] [--master 'local[*]'] [--model DIR]

1. Writes a Parquet export of --rows rows, built as benchmarks/batch.py builds its CSV (corpus
   descriptions varied with masked order numbers, emoji and claimed reasons).
2. Scores it with the local engine (all cores, in this process) and with the Spark engine on
   --master; prints seconds and rows/s of each and their ratio. Spark's figure covers its jobs
   (read, count, repartition, score, write, summary) including each Python worker loading the
   model; the session start is printed on its own line.
3. Reads both outputs back and compares them column by column.
Needs a trained model (`make train`). The load average is printed before and after: on a shared
machine, compare the ratio rather than the absolute figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from batch import HEADER, make_rows  # noqa: E402  (benchmarks/batch.py: the same rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--master", default="local[*]")
    ap.add_argument("--model", default=None, help="model directory or MLflow URI (default: what `train` wrote)")
    args = ap.parse_args()

    import pyarrow as pa
    import pyarrow.parquet as pq

    from ticket_nlp import Classifier
    from ticket_nlp.batch import score_file
    from ticket_nlp.spark import get_session, score_spark

    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; master {args.master}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = make_rows(args.rows)
        src = tmp / "export.parquet"
        pq.write_table(pa.table({h: [r[i] for r in rows] for i, h in enumerate(HEADER)}), src)
        del rows

        clf = Classifier.load(args.model)
        local = score_file(clf, src, tmp / "local.parquet", progress=False)
        del clf

        start = time.perf_counter()
        spark = get_session(args.master, {"spark.driver.memory": "2g", "spark.sql.shuffle.partitions": "8"})
        spark.sparkContext.setLogLevel("ERROR")
        session_seconds = time.perf_counter() - start
        remote = score_spark(str(src), str(tmp / "spark.parquet"), model=args.model, spark=spark)
        cores = spark.sparkContext.defaultParallelism
        spark.stop()

        a, b = pq.read_table(tmp / "local.parquet"), pq.read_table(tmp / "spark.parquet")
        equal = a.column_names == b.column_names and all(a.column(c).equals(b.column(c)) for c in a.column_names)
        print(f"spark session start: {session_seconds:.1f} s ({cores} executor cores)")
        print(f"{'engine':<28} {'rows':>10} {'seconds':>8} {'rows/s':>9}")
        for name, s in (("local (all cores)", local), (f"spark {args.master}", remote)):
            print(f"{name:<28} {s.rows:>10,} {s.seconds:8.1f} {s.rows / s.seconds:9,.0f}")
        ratio = (remote.rows / remote.seconds) / (local.rows / local.seconds)
        print(f"spark / local: {ratio:.2f}x; outputs equal: {equal}; load average now {os.getloadavg()[0]:.1f}")
        if not equal:
            raise SystemExit("the two engines' outputs differ")


if __name__ == "__main__":
    main()
