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
