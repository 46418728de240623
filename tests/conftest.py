"""Shared fixtures: the corpus, and one model trained once per test session on its train split."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

# MLflow must never reach the network in CI (no telemetry, no progress bars on a pipe); set before
# anything imports mlflow.
os.environ.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
                   "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"})

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


# --- MLflow --------------------------------------------------------------------------------------
@pytest.fixture(scope="session", autouse=True)
def mlflow_store(tmp_path_factory):
    """One real SQLite MLflow store (and artifact directory) for the whole session, so every
    `train` a test runs is tracked there and nothing lands in the working directory."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME")}
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ.pop("MLFLOW_EXPERIMENT_NAME", None)
    import mlflow

    from ticket_nlp.config import experiment_name

    mlflow.set_tracking_uri(uri)
    mlflow.MlflowClient().create_experiment(experiment_name(), artifact_location=(root / "artifacts").as_uri())
    yield uri
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def corpus():
    from ticket_nlp.data import load_labelled
    from ticket_nlp.train import ensure_splits

    return ensure_splits(load_labelled(CORPUS))


@pytest.fixture(scope="session")
def extra_set(corpus):
    """A small labelled 'extra evaluation set' (test rows with claims), as --eval passes one."""
    test = corpus.split("test")
    return test.subset(range(0, len(test), 10))


@pytest.fixture(scope="session")
def tracked_run(clf, model_dir, corpus, extra_set, mlflow_store) -> str:
    """The session model logged as a run with the shipped default config."""
    from ticket_nlp.experiment import load_config
    from ticket_nlp.tracking import log_training_run

    return log_training_run(clf, corpus, model_dir, load_config(ROOT / "configs" / "default.yaml"),
                            eval_sets={"extra": extra_set})


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
