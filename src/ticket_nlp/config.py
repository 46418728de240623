"""One place for names, paths and defaults.

Paths are relative to the working directory (the repo root when you follow the README), and each
can be moved with an environment variable so a deployment does not need code changes.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
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


def feedback_db_url() -> str:
    """Where agents' corrections are stored: any SQLAlchemy URL (PostgreSQL in production)."""
    return os.environ.get("TICKET_NLP_FEEDBACK_DB", "sqlite:///feedback.db")


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


# --- the API (ticket-nlp serve) -------------------------------------------------------------------
# A batch request holds at most this many tickets: 1,000 texts answer in well under a second.
MAX_BATCH_ITEMS = 1000


@dataclass(frozen=True)
class ApiSettings:
    """What an operator can set for the API, all from the environment (see serve/README.md)."""

    model: str = "models/ticket-classifier"  # a model directory or an MLflow model URI
    api_keys: frozenset[str] = frozenset()  # empty: no authentication (loopback/dev use)
    max_body_bytes: int = 8 * 1024 * 1024  # 1,000 texts of 2,000 CJK characters is 6 MB of UTF-8
    cors_origins: tuple[str, ...] = ()  # CORS is off unless origins are listed
    log_level: str = "info"
    feedback_db: str = "sqlite:///feedback.db"
    jobs_dir: str = str(Path(tempfile.gettempdir()) / "ticket-nlp-jobs")  # shared by the workers
    max_upload_bytes: int = 50 * 1024 * 1024  # an export uploaded from the console

    @classmethod
    def from_env(cls) -> ApiSettings:
        keys = {k.strip() for k in os.environ.get("TICKET_NLP_API_KEYS", "").split(",") if k.strip()}
        key_file = os.environ.get("TICKET_NLP_API_KEYS_FILE")
        if key_file:  # one key per line; blank lines and # comments ignored
            for line in Path(key_file).read_text(encoding="utf-8").splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    keys.add(line)
        origins = tuple(o.strip() for o in os.environ.get("TICKET_NLP_CORS_ORIGINS", "").split(",") if o.strip())
        return cls(
            model=os.environ.get("TICKET_NLP_MODEL", str(model_dir())),
            api_keys=frozenset(keys),
            max_body_bytes=int(os.environ.get("TICKET_NLP_MAX_BODY_BYTES", cls.max_body_bytes)),
            cors_origins=origins,
            log_level=os.environ.get("TICKET_NLP_LOG_LEVEL", "info").lower(),
            feedback_db=feedback_db_url(),
            jobs_dir=os.environ.get("TICKET_NLP_JOBS_DIR", cls.jobs_dir),
            max_upload_bytes=int(os.environ.get("TICKET_NLP_MAX_UPLOAD_BYTES", cls.max_upload_bytes)),
        )
