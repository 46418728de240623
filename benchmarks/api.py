"""The real-time API under a fixed request rate: latency percentiles, throughput, errors, memory.

    python benchmarks/api.py                       # 300 req/s of /v1/classify for 60 s + batches of 1,000
    python benchmarks/api.py --soak                # 150 req/s for 600 s: RSS growth of the server
    python benchmarks/api.py --rate 500 --duration 30 --workers 2

1. Starts `ticket-nlp serve --workers N` (no API keys) and waits for /readyz.
2. Baseline: the same rate against /healthz (the framework's own cost, no model), same run.
3. Drives POST /v1/classify at --rate for --duration from a separate process: an open-loop
   schedule (request i is due at i/rate), so a slow answer delays the latencies that follow it
   instead of hiding them; latency runs from the due time to the last byte of the answer.
   Texts and claimed reasons come from the corpus test split, so every request differs.
4. POSTs --batch-runs batches of 1,000 texts one after another: median and p95 answer time.
5. Samples the resident memory of the server's process tree; with --soak, reports the growth
   from after warm-up to the end.
Needs a trained model (`make train`). The load generator shares the machine with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.batch import tree_rss_mb  # noqa: E402


# --- the load generator: raw HTTP/1.1 keep-alive over asyncio streams (cheap per request) -----------
def request_bytes(path: str, body: bytes | None) -> bytes:
    if body is None:
        return f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes) -> int:
    writer.write(payload)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def open_loop(port: int, payloads: list[bytes], rate: float, duration: float,
                    connections: int) -> dict:
    """Send payloads round-robin on schedule; latency counts from the due time."""
    pool: asyncio.Queue = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []
    errors: dict[str, int] = {}
    clock = time.perf_counter  # not loop.time(): uvloop's clock ticks in whole milliseconds
    start = clock() + 0.05
    total = int(rate * duration)

    async def one(i: int) -> None:
        due = start + i / rate
        conn = await pool.get()
        try:
            status = await exchange(*conn, payloads[i % len(payloads)])
            if status != 200:
                errors[str(status)] = errors.get(str(status), 0) + 1
        except (OSError, asyncio.IncompleteReadError) as err:
            errors[type(err).__name__] = errors.get(type(err).__name__, 0) + 1
            conn[1].close()
            conn = await asyncio.open_connection("127.0.0.1", port)
        latencies.append(clock() - due)
        pool.put_nowait(conn)

    tasks = []
    for i in range(total):
        delay = start + i / rate - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(i)))
    await asyncio.gather(*tasks)
    elapsed = clock() - start
    while not pool.empty():
        pool.get_nowait()[1].close()
    return {"requests": total, "seconds": elapsed, "latencies": latencies, "errors": errors}


def _load_process(port, payloads, rate, duration, connections, out) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    out.put(asyncio.run(open_loop(port, payloads, rate, duration, connections)))


def drive(port: int, payloads: list[bytes], rate: float, duration: float, connections: int = 64) -> dict:
    """Run the open loop in a separate process, as an outside client would."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_load_process, args=(port, payloads, rate, duration, connections, out))
    proc.start()
    result = out.get()
    proc.join()
    return result


def percentiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": ordered[-1] * 1000}


def report(name: str, result: dict) -> dict[str, float]:
    p = percentiles(result["latencies"])
    errors = sum(result["errors"].values())
    print(f"{name:<26} {result['requests'] / result['seconds']:>7.1f} req/s  p50 {p['p50']:6.2f} ms  "
          f"p95 {p['p95']:6.2f} ms  p99 {p['p99']:6.2f} ms  max {p['max']:7.2f} ms  errors {errors}"
          + (f" {result['errors']}" if errors else ""))
    return {**p, "errors": errors}


# --- the server ---------------------------------------------------------------------------------
def start_server(port: int, workers: int, model: str | None) -> subprocess.Popen:
    cmd = [str(Path(sys.executable).parent / "ticket-nlp"), "serve", "--port", str(port),
           "--workers", str(workers), "--log-level", "warning"]
    if model:
        cmd += ["--model", model]
    env = {k: v for k, v in os.environ.items() if k not in ("TICKET_NLP_API_KEYS", "TICKET_NLP_API_KEYS_FILE")}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    time.sleep(2 if workers > 1 else 0)  # let every worker finish loading
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not become ready")


def post(port: int, path: str, body: bytes) -> tuple[int, float]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body,
                                 headers={"Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as r:
        r.read()
        return r.status, time.perf_counter() - start


def corpus_items() -> list[dict[str, str]]:
    with open(ROOT / "data" / "tickets.csv", encoding="utf-8", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "test"]
    return [{"text": r["description"], "claimed_reason": r["claimed_reason"], "ticket_id": r["ticket_id"]}
            for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=300)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--workers", type=int, default=2, help="server processes (default: one per core)")
    ap.add_argument("--batch-runs", type=int, default=20)
    ap.add_argument("--soak", action="store_true", help="150 req/s for 600 s and report RSS growth")
    ap.add_argument("--port", type=int, default=8799)
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    if args.soak:
        args.rate, args.duration = (args.rate if args.rate != 300 else 150), (
            args.duration if args.duration != 60 else 600)

    items = corpus_items()
    payloads = [request_bytes("/v1/classify", json.dumps(i, ensure_ascii=False).encode()) for i in items]
    health = [request_bytes("/healthz", None)]
    print(f"server: ticket-nlp serve --workers {args.workers}; {os.cpu_count()} cores shared with the load generator")
    server = start_server(args.port, args.workers, args.model)
    try:
        drive(args.port, payloads, rate=100, duration=5)  # warm-up: caches, JIT-less but lazy imports
        rss_start = tree_rss_mb(server.pid)
        samples = [rss_start]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(5):
                samples.append(tree_rss_mb(server.pid))

        threading.Thread(target=sample, daemon=True).start()
        base = report(f"/healthz @ {args.rate:.0f}/s", drive(args.port, health, args.rate, min(args.duration, 20)))
        main_run = report(f"/v1/classify @ {args.rate:.0f}/s", drive(args.port, payloads, args.rate, args.duration))
        print(f"  p99 ratio classify/healthz: {main_run['p99'] / max(base['p99'], 1e-9):.1f}x")
        stop.set()
        rss_end = tree_rss_mb(server.pid)
        print(f"server RSS (process tree): {rss_start:.0f} MB after warm-up -> {rss_end:.0f} MB at the end "
              f"({(rss_end - rss_start) / rss_start:+.1%}), peak {max(samples):.0f} MB")
        if not args.soak and args.batch_runs:
            times = []
            for k in range(args.batch_runs):
                chunk = items[(k * 1000) % len(items):][:1000]
                chunk += items[:1000 - len(chunk)]
                status, seconds = post(args.port, "/v1/classify/batch",
                                       json.dumps({"items": chunk}, ensure_ascii=False).encode())
                assert status == 200
                times.append(seconds * 1000)
            times.sort()
            print(f"/v1/classify/batch x1000  median {statistics.median(times):.1f} ms  "
                  f"p95 {times[int(0.95 * (len(times) - 1))]:.1f} ms  over {len(times)} calls")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
