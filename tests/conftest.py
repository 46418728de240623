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
