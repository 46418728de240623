"""What the API tells operators: request ids, the one error shape, Prometheus metrics and
masked JSON logs. ``RequestContext`` is the middleware that ties them to every request.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi.responses import JSONResponse
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException

from ticket_nlp.model import Prediction
from ticket_nlp.text import mask_pii

log = logging.getLogger("ticket_nlp.api")

# --- metrics --------------------------------------------------------------------------------------
disable_created_metrics()  # no *_created series: half the output, nothing a dashboard reads
REQUESTS_TOTAL = Counter("ticket_nlp_requests_total", "HTTP requests answered.", ["method", "route", "status"])
REQUEST_SECONDS = Histogram("ticket_nlp_request_duration_seconds", "Time to answer a request.", ["route"],
                            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
PREDICTIONS_TOTAL = Counter("ticket_nlp_predictions_total", "Tickets labelled, by label.", ["label"])
MISMATCHES_TOTAL = Counter("ticket_nlp_mismatches_total", "Claimed reasons flagged as contradicted.", ["severity"])
ERRORS_TOTAL = Counter("ticket_nlp_errors_total", "Error responses, by error code.", ["code"])
RELOADS_TOTAL = Counter("ticket_nlp_model_reloads_total", "Model reloads, by outcome.", ["outcome"])
MODEL_INFO = Gauge("ticket_nlp_model_info", "The model in service (value 1).", ["version"],
                   multiprocess_mode="livemax")


def metrics_payload() -> bytes:
    """Prometheus text; with several uvicorn workers, the sum over all of them."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def record(predictions: list[Prediction]) -> None:
    for p in predictions:
        PREDICTIONS_TOTAL.labels(p.label).inc()
        if p.mismatch.status == "mismatch":
            MISMATCHES_TOTAL.labels(p.mismatch.severity).inc()


# --- logging --------------------------------------------------------------------------------------
class JsonFormatter(logging.Formatter):
    """One JSON object per line. Messages and free-text fields (paths, ids, errors) pass through
    ``mask_pii``: phone numbers, order numbers and addresses never reach the log."""

    UNMASKED = frozenset({"request_id", "method", "status", "ms", "version", "trigger", "workers"})

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": _mask(record.getMessage()),
        }
        for key, value in (getattr(record, "fields", None) or {}).items():
            entry[key] = _mask(value) if isinstance(value, str) and key not in self.UNMASKED else value
        if record.exc_info:
            entry["error"] = _mask(repr(record.exc_info[1]))
        return json.dumps(entry, ensure_ascii=False)


def _mask(text: str) -> str:
    return mask_pii(text, addresses=True, urls=False)


def log_config(level: str = "info") -> dict[str, Any]:
    """uvicorn ``log_config``: its own messages and ours, all as masked JSON lines on stderr."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "ticket_nlp.observability.JsonFormatter"}},
        "handlers": {"stderr": handler},
        "loggers": {name: {"handlers": ["stderr"], "level": level.upper(), "propagate": False}
                    for name in ("uvicorn", "uvicorn.error", "ticket_nlp")},
    }


# --- request context: id, body limit, metrics, access log --------------------------------------------
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestContext:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware on a millisecond budget)."""

    def __init__(self, app, max_body_bytes: int, max_upload_bytes: int):
        self.app, self.max_body_bytes, self.max_upload_bytes = app, max_body_bytes, max_upload_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        headers = dict(scope.get("headers") or ())
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _SAFE_ID.match(given) else uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        status = [500]

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                MutableHeaders(scope=message).append("x-request-id", request_id)
            await send(message)

        limit = self.max_upload_bytes if scope["path"] == "/v1/jobs" else self.max_body_bytes
        received = 0
        declared = headers.get(b"content-length", b"")
        try:
            if declared.isdigit() and int(declared) > limit:
                response = error_response(request_id, 413, "body_too_large",
                                          f"request body is {int(declared):,} bytes; the limit is {limit:,}")
                await response(scope, receive, send_with_id)
                return

            async def limited_receive():  # bodies without Content-Length are counted as they arrive
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        raise StarletteHTTPException(413, f"request body is over the limit of {limit:,} bytes")
                return message

            await self.app(scope, limited_receive, send_with_id)
        finally:
            seconds = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            REQUESTS_TOTAL.labels(scope["method"], route, str(status[0])).inc()
            REQUEST_SECONDS.labels(route).observe(seconds)
            if route not in ("/healthz", "/readyz", "/metrics"):
                log.info("request", extra={"fields": {
                    "request_id": request_id, "method": scope["method"], "path": scope["path"],
                    "status": status[0], "ms": round(seconds * 1000, 2)}})


# --- the error shape ------------------------------------------------------------------------------
def error_response(request_id: str, status: int, code: str, message: str,
                   details: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    ERRORS_TOTAL.labels(code).inc()
    body = {"status": status, "code": code, "message": message, "request_id": request_id}
    if details:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)
