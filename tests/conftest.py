"""Shared fixtures: the corpus, and one model trained once per test session on its train split."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "data" / "tickets.csv"
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def corpus_rows() -> list[dict[str, str]]:
    with open(CORPUS, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """Train the default pipeline (no variant comparison) on the corpus; every model test uses it."""
    from ticket_nlp.data import load_labelled
    from ticket_nlp.train import train

    out = tmp_path_factory.mktemp("model")
    train(load_labelled(CORPUS), compare=False, log=lambda *a: None).save(out)
    return out


@pytest.fixture(scope="session")
def clf(model_dir):
    from ticket_nlp import Classifier

    return Classifier.load(model_dir)


# --- one real API server for the whole session (API tests, schemathesis, the browser tests) ------------
API_KEY = "test-key-7f3a"
CORS_ORIGIN = "https://console.example"


class ApiServer:
    """A ``ticket-nlp serve`` process on loopback: its URL, auth header, process and log file."""

    def __init__(self, url: str, process, log_path: Path, env: dict[str, str]):
        self.url, self.process, self.log_path = url, process, log_path
        self.headers = {"X-API-Key": API_KEY}
        self.feedback_db = env.get("TICKET_NLP_FEEDBACK_DB", "sqlite:///feedback.db")

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(encoding="utf-8").splitlines()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: Path, log_path: Path, env: dict[str, str], workers: int = 1) -> ApiServer:
    import os
    import subprocess
    import sys
    import time

    import httpx

    port = free_port()
    full_env = {**os.environ, "TICKET_NLP_MODEL": str(model), **env}
    full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 (handed to the child process)
    process = subprocess.Popen([sys.executable, "-m", "ticket_nlp.cli", "serve", "--port", str(port),
                                "--workers", str(workers)], stdout=log, stderr=subprocess.STDOUT, env=full_env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return ApiServer(url, process, log_path, env)
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server not ready in 90 s: {log_path.read_text()[-2000:]}")


def stop_server(server: ApiServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except Exception:
        server.process.kill()


@pytest.fixture(scope="session")
def api_server(model_dir, tmp_path_factory):
    """API keys and a CORS origin configured; a small body limit so 413 is cheap to provoke."""
    tmp = tmp_path_factory.mktemp("api")
    server = start_server(model_dir, tmp / "server.log", {
        "TICKET_NLP_API_KEYS": f"{API_KEY},second-key",
        "TICKET_NLP_CORS_ORIGINS": CORS_ORIGIN,
        "TICKET_NLP_MAX_BODY_BYTES": str(512 * 1024),
        "TICKET_NLP_FEEDBACK_DB": f"sqlite:///{tmp / 'feedback.db'}",
        "TICKET_NLP_JOBS_DIR": str(tmp / "jobs"),
        "TICKET_NLP_MAX_UPLOAD_BYTES": str(2 * 1024 * 1024),
    })
    yield server
    stop_server(server)
