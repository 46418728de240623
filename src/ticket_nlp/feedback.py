"""Agents' corrections: the best training data the project gets, so none is ever lost.

A correction is stored in one transaction and acknowledged only after it commits; SQLite (the
default, WAL with full sync) or any SQLAlchemy URL (PostgreSQL in production). ``export`` writes
them in the corpus format, so ``ticket-nlp train --data data/tickets.csv --data corrections.csv``
learns from both.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Engine

from ticket_nlp.config import LABELS, LABELS_ZH, MAX_TEXT_CHARS, feedback_db_url

metadata = MetaData()
feedback_table = Table(
    "feedback", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("ticket_id", String(128)),
    Column("text", Text, nullable=False),
    Column("claimed_reason", String(200)),
    Column("product", String(200)),  # the fit rule depends on it; added later, see FeedbackStore._add_columns
    Column("predicted", String(32), nullable=False),
    Column("correct_label", String(32), nullable=False),
    Column("agent", String(100)),
    Column("model_version", String(64)),
)

# The corpus columns (data/tickets.csv) that a correction fills; the rest stay empty.
EXPORT_COLUMNS = ("ticket_id", "platform", "product_category", "product", "claimed_reason", "description", "label",
                  "secondary_labels", "boundary", "split", "source", "predicted", "agent", "created_at")
LIMITS = {"ticket_id": 128, "claimed_reason": 200, "product": 200, "agent": 100, "model_version": 64}


class FeedbackError(ValueError):
    """A correction that cannot be stored; the message says which field and why."""


def validate(record: dict[str, Any]) -> dict[str, Any]:
    """The checks the API's schema makes, for callers that do not go through it."""
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise FeedbackError("text: a correction needs the ticket's description")
    if len(text) > MAX_TEXT_CHARS:
        raise FeedbackError(f"text: at most {MAX_TEXT_CHARS} characters")
    for key in ("predicted", "correct_label"):
        label = record.get(key)
        if label not in LABELS:
            raise FeedbackError(f"{key}: {label!r} is not one of {list(LABELS)}")
    clean = {"text": text, "predicted": record["predicted"], "correct_label": record["correct_label"]}
    for key, limit in LIMITS.items():
        value = record.get(key)
        if value is not None and not isinstance(value, str):
            raise FeedbackError(f"{key}: must be a string")
        if value is not None and len(value) > limit:
            raise FeedbackError(f"{key}: at most {limit} characters")
        clean[key] = (value.strip() or None) if isinstance(value, str) else None
    return clean


class FeedbackStore:
    def __init__(self, url: str | None = None):
        self.url = url or feedback_db_url()
        self.engine: Engine = create_engine(self.url, pool_pre_ping=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        metadata.create_all(self.engine)
        self._add_columns()

    def _add_columns(self) -> None:
        """A store made by an earlier version lacks the columns added since (``product``): add
        them, nullable, so its corrections are kept and new ones carry the new fields."""
        have = {c["name"] for c in inspect(self.engine).get_columns(feedback_table.name)}
        missing = [c for c in feedback_table.columns if c.name not in have]
        if missing:
            with self.engine.begin() as conn:
                for column in missing:
                    conn.execute(text(f"ALTER TABLE {feedback_table.name} ADD COLUMN {column.name} "
                                      f"{column.type.compile(self.engine.dialect)}"))

    def add(self, record: dict[str, Any]) -> dict[str, Any]:
        """Store one correction; returns its id and time once the transaction has committed."""
        row = {**validate(record), "created_at": datetime.now(UTC)}
        with self.engine.begin() as conn:  # commits on exit, rolls back on any error
            new_id = conn.execute(insert(feedback_table).values(**row)).inserted_primary_key[0]
        return {"id": int(new_id), "created_at": row["created_at"].isoformat(timespec="seconds")}

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(feedback_table)).scalar_one())

    def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        query = select(feedback_table).order_by(feedback_table.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_public(dict(r._mapping)) for r in conn.execute(query)]

    def rows(self) -> Iterator[dict[str, Any]]:
        query = select(feedback_table).order_by(feedback_table.c.id)
        with self.engine.connect() as conn:
            for r in conn.execution_options(stream_results=True).execute(query):
                yield _public(dict(r._mapping))

    def export(self, path: str | Path, split: str = "train") -> int:
        """Write every correction in the corpus format (atomically); returns the row count.

        Corrections go to ``split`` (train by default): they teach the model, while the corpus's
        own valid/test rows keep measuring it the same way as before.
        """
        path = Path(path)
        tmp = path.with_name(path.name + ".partial")
        n = 0
        with open(tmp, "w", encoding="utf-8-sig", newline="") as f:
            w = csv.DictWriter(f, fieldnames=EXPORT_COLUMNS)
            w.writeheader()
            for r in self.rows():
                w.writerow({"ticket_id": r["ticket_id"] or f"feedback-{r['id']}", "claimed_reason": r["claimed_reason"] or "",
                            "product": r["product"] or "", "description": r["text"], "label": r["correct_label"],
                            "split": split,
                            "source": "feedback", "predicted": r["predicted"], "agent": r["agent"] or "",
                            "created_at": r["created_at"]})
                n += 1
        os.replace(tmp, path)
        return n

    def dispose(self) -> None:
        self.engine.dispose()


def _public(row: dict[str, Any]) -> dict[str, Any]:
    created = row["created_at"]
    if isinstance(created, datetime):
        created = (created if created.tzinfo else created.replace(tzinfo=UTC)).isoformat(timespec="seconds")
    return {**row, "created_at": created, "correct_label_zh": LABELS_ZH.get(row["correct_label"], "")}


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """WAL lets API workers read while one writes; synchronous=FULL makes a commit durable
    (survives power loss) before the API says 201; busy_timeout waits out a concurrent writer."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
