"""Upload jobs: an export uploaded from the console, scored in the background by the same
``batch.score_file`` as the CLI, with progress any API worker can report.

Each job is a directory under the jobs root (input, scored output, HTML report, ``state.json``),
so a status poll or a download may reach any uvicorn worker. State is replaced atomically, so a
reader never sees half a file. Jobs older than a day are removed when a new one arrives.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from ticket_nlp.batch import ScoreError, score_file, write_report
from ticket_nlp.model import Classifier

log = logging.getLogger("ticket_nlp.jobs")

UPLOAD_FORMATS = (".csv", ".tsv", ".xlsx", ".parquet", ".jsonl")
JOB_ID = re.compile(r"^[0-9a-f]{32}$")
KEEP_SECONDS = 24 * 3600
JOB_CHUNK_ROWS = 1000  # small chunks: the progress bar moves on a few-thousand-row export


class JobError(ValueError):
    """An upload that cannot become a job (unsupported file type)."""


def sniff_format(head: bytes) -> str:
    """The format an extension-less upload is in: workbook (zip), Parquet, JSON lines, else CSV."""
    if head.startswith(b"PK\x03\x04"):
        return ".xlsx"
    if head.startswith(b"PAR1"):
        return ".parquet"
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return ".jsonl"
    return ".csv"


class JobStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._runner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ticket-nlp-job")

    # files
    def _dir(self, job_id: str) -> Path:
        if not JOB_ID.match(job_id):
            raise KeyError(job_id)
        return self.root / job_id

    def input_path(self, job_id: str) -> Path:
        state = self.get(job_id)
        return self._dir(job_id) / f"input{Path(state['filename']).suffix.lower()}"

    def result_path(self, job_id: str) -> Path:
        return self.input_path(job_id).with_name(f"scored{self.input_path(job_id).suffix}")

    def report_path(self, job_id: str) -> Path:
        return self._dir(job_id) / "report.html"

    def result_name(self, job_id: str) -> str:
        name = Path(self.get(job_id)["filename"])
        return f"{name.stem}.scored{name.suffix.lower()}"

    # state
    def get(self, job_id: str) -> dict[str, Any]:
        """The job's state; KeyError when there is no such job."""
        try:
            return json.loads((self._dir(job_id) / "state.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise KeyError(job_id) from None

    def _save(self, job_id: str, **changes: Any) -> dict[str, Any]:
        path = self._dir(job_id) / "state.json"
        state = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        state.update(changes)
        tmp = path.with_name(f"state.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)
        return state

    # lifecycle
    def create(self, filename: str, upload: BinaryIO) -> dict[str, Any]:
        """Copy the upload into a new job directory. A name without an extension (exports get
        renamed) is read by its first bytes; a name with another extension is refused."""
        suffix = Path(filename or "").suffix.lower()
        if suffix == ".xls":
            raise JobError(f"file: {filename!r} is an old-style .xls workbook; save it as .xlsx or .csv")
        if suffix and suffix not in UPLOAD_FORMATS:
            raise JobError(f"file: {filename!r} is not one of {', '.join(UPLOAD_FORMATS)}")
        if not suffix:
            suffix = sniff_format(upload.read(8))
            upload.seek(0)
            filename = f"{filename or 'upload'}{suffix}"
        self._clean_old()
        job_id = uuid.uuid4().hex
        directory = self.root / job_id
        directory.mkdir()
        with open(directory / f"input{suffix}", "wb") as out:
            shutil.copyfileobj(upload, out, 1 << 20)
        return self._save(job_id, id=job_id, filename=Path(filename).name, status="queued", progress=0.0,
                          rows_done=0, error=None, summary=None,
                          created_at=datetime.now(UTC).isoformat(timespec="seconds"))

    def submit(self, job_id: str, clf: Classifier, text_col: str | None = None, reason_col: str | None = None) -> None:
        self._runner.submit(self._run, job_id, clf, text_col, reason_col)

    def _run(self, job_id: str, clf: Classifier, text_col: str | None, reason_col: str | None) -> None:
        self._save(job_id, status="running")
        source, result = self.input_path(job_id), self.result_path(job_id)
        try:
            summary = score_file(clf, source, result, text_col=text_col, reason_col=reason_col, workers=1,
                                 chunk_rows=JOB_CHUNK_ROWS, progress=False,
                                 on_chunk=lambda rows, fraction: self._save(job_id, rows_done=rows,
                                                                            progress=round(fraction, 3)))
            write_report(summary, self.report_path(job_id), Path(self.get(job_id)["filename"]))
            self._save(job_id, status="done", progress=1.0, rows_done=summary.rows, summary=summary.to_dict())
        except ScoreError as err:  # the file's own problem: tell the person who uploaded it
            self._save(job_id, status="failed", error=str(err).replace(str(source), self.get(job_id)["filename"]))
        except Exception as err:
            log.error("upload job failed", extra={"fields": {"job": job_id, "error": type(err).__name__}})
            self._save(job_id, status="failed", error="internal error while scoring; see the server log")

    def _clean_old(self) -> None:
        cutoff = time.time() - KEEP_SECONDS
        for directory in self.root.iterdir():
            if JOB_ID.match(directory.name) and directory.stat().st_mtime < cutoff:
                shutil.rmtree(directory, ignore_errors=True)

    def shutdown(self) -> None:
        self._runner.shutdown(wait=False, cancel_futures=True)
