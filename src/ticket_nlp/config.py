"""One place for names, paths and defaults.

Paths are relative to the working directory (the repo root when you follow the README), and each
can be moved with an environment variable so a deployment does not need code changes.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

# The label set of ../shared/LABELING.md, in a fixed order used for every probability vector.
LABELS: tuple[str, ...] = ("quality_defect", "size_exchange", "logistics", "no_reason_return", "other")
LABELS_ZH: dict[str, str] = {
    "quality_defect": "质量问题",
    "size_exchange": "尺码/换货",
    "logistics": "物流问题",
    "no_reason_return": "七天无理由",
    "other": "其他",
}

# Who bears the cost when the label is right: a contradiction that crosses this line changes who pays
# return shipping and whether the seller's defect rate moves, so it is the severe kind of mismatch.
SELLER_SIDE = frozenset({"quality_defect", "logistics"})
BUYER_SIDE = frozenset({"no_reason_return", "size_exchange"})

RESOURCES = resources.files("ticket_nlp") / "resources"


def _env_path(name: str, default: str | Path) -> Path:
    return Path(os.environ.get(name, str(default)))


def data_path() -> Path:
    """The shipped labelled corpus."""
    return _env_path("TICKET_NLP_DATA", "data/tickets.csv")


def model_dir() -> Path:
    """Where `ticket-nlp train` writes and every other verb loads the model by default."""
    return _env_path("TICKET_NLP_MODEL", "models/ticket-classifier")


def reasons_path() -> Path:
    """The claimed-reason mapping: the packaged YAML unless ops point to their own copy."""
    override = os.environ.get("TICKET_NLP_REASONS")
    return Path(override) if override else Path(str(RESOURCES / "reasons.yaml"))


def user_dict_path() -> Path:
    """Domain words for the segmenter (尺码, 七天无理由, 开线, ...)."""
    return Path(str(RESOURCES / "userdict.txt"))


MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"

# A description needs at least this many letters/digits/CJK characters to support or contradict a
# claim; shorter ones ("差", "?") get status insufficient_text.
MIN_CONTENT_CHARS = 2
# Descriptions longer than this are cut before scoring (exports sometimes paste whole chat logs).
MAX_TEXT_CHARS = 2000

# --- experiment tracking (MLflow) -----------------------------------------------------------------
# Registered model name and the alias the API and batch scoring load (models:/ticket-nlp@champion).
REGISTERED_MODEL = "ticket-nlp"
CHAMPION_ALIAS = "champion"
# The pyfunc model's name inside a run: runs:/<run_id>/model.
RUN_MODEL_NAME = "model"


def tracking_uri() -> str:
    """A team server when MLFLOW_TRACKING_URI says so, else a SQLite file in the working directory
    (MLflow 3's own default), so a laptop needs no server to compare runs."""
    return os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"


def experiment_name() -> str:
    """One experiment holds every training run, so `mlflow ui` compares them side by side."""
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or "ticket-nlp"
