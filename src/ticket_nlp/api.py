"""The real-time API: one ticket in, label, mismatch and evidence out, in milliseconds. The same
app serves the agent console (``/``), its corrections (``/v1/feedback``) and export uploads
(``/v1/jobs``).

``create_app()`` builds the FastAPI app from ``ApiSettings`` (environment); ``ticket-nlp serve``
runs it under uvicorn. The classifier is held by a ``ModelHolder`` and injected into handlers as a
dependency; a reload builds the new classifier first and swaps one reference, so requests in flight
finish on the model they started with and none fails during the swap.

The contract (request/response models) is in ``schemas``; request ids, the error shape, metrics
and masked JSON logs are in ``observability``. Every error has one JSON shape
(``{"error": {"status", "code", "message", "request_id"}}``) and never a stack trace.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import signal
import sys
import threading
import uuid
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, File, Form, Query, Request, Security, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from ticket_nlp import __version__
from ticket_nlp.config import LABELS, LABELS_ZH, MAX_BATCH_ITEMS, ApiSettings
from ticket_nlp.feedback import FeedbackError, FeedbackStore
from ticket_nlp.jobs import UPLOAD_FORMATS, JobError, JobStore
from ticket_nlp.model import Classifier, Prediction, freeze_heap
from ticket_nlp.observability import (
    MODEL_INFO,
    RELOADS_TOTAL,
    JsonFormatter,
    RequestContext,
    error_response,
    metrics_payload,
    record,
)
from ticket_nlp.schemas import (
    ERRORS,
    BatchRequest,
    BatchResponse,
    ClassifyRequest,
    ClassifyResponse,
    ErrorResponse,
    FeedbackAck,
    FeedbackList,
    FeedbackRequest,
    Health,
    JobOut,
    ModelInfo,
    Ready,
    ReasonsResponse,
    ReloadResponse,
)

log = logging.getLogger("ticket_nlp.api")

STATIC_DIR = Path(__file__).resolve().parent / "static"  # the console page and its assets
# With several workers, ``serve`` names a token file here; rewriting it (POST /v1/admin/reload, or
# SIGHUP to the supervisor) makes every worker reload its model in place.
RELOAD_TOKEN_ENV = "TICKET_NLP_RELOAD_TOKEN"
RELOAD_POLL_SECONDS = 0.5


# --- errors ---------------------------------------------------------------------------------------
class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


HTTP_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 409: "not_ready",
              413: "body_too_large", 415: "unsupported_media_type", 422: "invalid_request", 503: "unavailable"}


def _request_id(request: Request) -> str:
    return getattr(request.state, "request_id", "") or "-"


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": "ApiKey"} if exc.status == 401 else None
    return error_response(_request_id(request), exc.status, exc.code, exc.message, exc.details, headers)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 400:  # FastAPI's "error parsing the body" (bytes that are not UTF-8 JSON)
        return error_response(_request_id(request), 422, "invalid_request", "the body is not valid UTF-8 JSON")
    message = exc.detail if isinstance(exc.detail, str) else HTTP_CODES.get(exc.status_code, "error")
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:  # every method the path has, not only the first route's
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return error_response(_request_id(request), exc.status_code, HTTP_CODES.get(exc.status_code, "http_error"),
                          message, headers=headers or None)


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.routes:
        regex, route_methods = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is not None and route_methods and regex.match(request.url.path):
            methods |= set(route_methods)
    return sorted(methods)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 whose message names each bad field and what it must be ("at most 2000 characters").
    The offending input is not echoed back: it may be a ticket with personal data."""
    details = [{"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type", "")}
               for e in exc.errors()]
    message = "; ".join(f"{'.'.join(d['loc'])}: {d['msg']}" for d in details) or "invalid request"
    return error_response(_request_id(request), 422, "invalid_request", message, details)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", extra={"fields": {"request_id": _request_id(request), "error": type(exc).__name__}})
    # answered outside RequestContext (Starlette's outermost middleware), so the id header is set here
    return error_response(_request_id(request), 500, "internal_error",
                          "internal error; quote the request_id when reporting it",
                          headers={"x-request-id": _request_id(request)})


# --- the model in service -------------------------------------------------------------------------
class ModelHolder:
    """The classifier in service. ``load`` builds and warms the new one before swapping a single
    reference, so a reload never fails a request; one reload runs at a time."""

    def __init__(self, source: str):
        self.source = source
        self.classifier: Classifier | None = None
        self.loaded_at: str | None = None
        self.error: str | None = None
        self._lock = threading.Lock()

    def load(self) -> Classifier:
        with self._lock:
            try:
                clf = Classifier.load(self.source)
                clf.predict(["收到发现袖口开线了"], ["七天无理由退货"])  # first call fills caches
            except Exception as err:
                self.error = f"{type(err).__name__}: {err}"
                RELOADS_TOTAL.labels("failed").inc()
                raise
            previous, self.classifier = self.classifier, clf
            self.loaded_at, self.error = datetime.now(UTC).isoformat(timespec="seconds"), None
            if previous is not None:
                MODEL_INFO.remove(previous.version)
                del previous
            MODEL_INFO.labels(clf.version).set(1)
            RELOADS_TOTAL.labels("ok").inc()
            freeze_heap()
            return clf


def get_models(request: Request) -> ModelHolder:
    return request.app.state.models


async def get_classifier(request: Request) -> Classifier:
    """The injected model (async: no thread hop on the hot path)."""
    clf = request.app.state.models.classifier
    if clf is None:
        reason = request.app.state.models.error or "still loading"
        raise ApiError(503, "model_unavailable", f"no model is loaded ({reason})")
    return clf


async def get_feedback(request: Request) -> FeedbackStore:
    store = request.app.state.feedback
    if store is None:
        raise ApiError(503, "feedback_unavailable", "the feedback store is not reachable; nothing was stored")
    return store


async def get_jobs(request: Request) -> JobStore:
    return request.app.state.jobs


ClassifierDep = Annotated[Classifier, Depends(get_classifier)]
FeedbackDep = Annotated[FeedbackStore, Depends(get_feedback)]
JobsDep = Annotated[JobStore, Depends(get_jobs)]
ModelsDep = Annotated[ModelHolder, Depends(get_models)]

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                              description="Required when the server has API keys configured.")


async def require_api_key(request: Request, key: Annotated[str | None, Security(api_key_header)]) -> None:
    keys = request.app.state.settings.api_keys
    if not keys:
        return
    if not key or not any(hmac.compare_digest(key.encode(), k.encode()) for k in keys):
        raise ApiError(401, "unauthorized", "missing or invalid X-API-Key header")


# --- handlers -------------------------------------------------------------------------------------
def result_dict(p: Prediction, ticket_id: str | None, version: str) -> dict[str, Any]:
    return {"ticket_id": ticket_id, **p.to_dict(), "label_zh": LABELS_ZH[p.label], "model_version": version}


def classify_many(clf: Classifier, items: list[ClassifyRequest]) -> dict[str, Any]:
    predictions = clf.predict([i.text for i in items], [i.claimed_reason for i in items], [i.product for i in items])
    record(predictions)
    return {"model_version": clf.version, "count": len(items),
            "results": [result_dict(p, i.ticket_id, clf.version) for p, i in zip(predictions, items, strict=True)]}


CLASSIFY_EXAMPLES = {
    "mismatch": {"summary": "七天无理由, but the text names a defect",
                 "value": {"text": "收到就发现袖口开线了，要求退货", "claimed_reason": "七天无理由退货", "ticket_id": "AS-1001"}},
    "consistent": {"summary": "质量问题 claimed, and the text agrees",
                   "value": {"text": "用了两次就坏了，按键失灵", "claimed_reason": "质量问题"}},
    "size": {"summary": "a size exchange, no claim given", "value": {"text": "鞋子偏小一码，想换大一码"}},
}

v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)], responses=ERRORS)


@v1.post("/classify", response_model=ClassifyResponse, tags=["classify"], summary="Label one ticket")
async def classify(body: Annotated[ClassifyRequest, Body(openapi_examples=CLASSIFY_EXAMPLES)],
                   clf: ClassifierDep) -> dict[str, Any]:
    """Label the description, check it against the claimed reason, and return the words that prove it."""
    [prediction] = clf.predict([body.text], [body.claimed_reason], [body.product])
    record([prediction])
    return result_dict(prediction, body.ticket_id, clf.version)


@v1.post("/classify/batch", response_model=BatchResponse, tags=["classify"],
         summary=f"Label up to {MAX_BATCH_ITEMS} tickets")
async def classify_batch(body: BatchRequest, clf: ClassifierDep) -> dict[str, Any]:
    """One call for many tickets: cheaper per ticket than single calls. Results keep the order given."""
    return await run_in_threadpool(classify_many, clf, body.items)  # keeps the event loop answering


@v1.get("/model", response_model=ModelInfo, tags=["model"], summary="The model in service")
async def model_info(clf: ClassifierDep, models: ModelsDep) -> dict[str, Any]:
    meta = clf.metadata
    return {"name": meta.get("name", "ticket-nlp"), "version": clf.version, "source": models.source,
            "trained_at": meta.get("trained_at"), "loaded_at": models.loaded_at, "labels": list(LABELS),
            "labels_zh": LABELS_ZH,
            "thresholds": {"review": clf.review_thresholds, "mismatch": clf.mismatch_threshold,
                           "claim_agreement": clf.claim_agreement},
            "metrics": meta.get("metrics", {}), "variant": meta.get("variant"), "params": meta.get("params", {})}


@v1.get("/reasons", response_model=ReasonsResponse, tags=["model"], summary="The claimed-reason mapping")
async def reasons(clf: ClassifierDep) -> dict[str, Any]:
    mapping = clf.reasons
    return {"source": os.path.basename(mapping.source), "count": len(mapping),
            "refund_type_prefixes": list(mapping.prefixes),
            "reasons": [{"reason": r, "labels": list(labels)} for r, labels in mapping.display.items()]}


@v1.post("/admin/reload", response_model=ReloadResponse, tags=["admin"], summary="Reload the model")
async def reload_model(models: ModelsDep) -> dict[str, Any]:
    """Load the model source again (a retrained directory, or whatever ``@champion`` now points to).

    With one process the new model is in service when this returns. Under ``--workers N`` every
    worker is told (through the reload token) and reloads in place within a second; each swaps
    its model only once the new one is loaded, so no request fails and no connection is cut.
    """
    previous = models.classifier.version if models.classifier else None
    token = os.environ.get(RELOAD_TOKEN_ENV)
    if token:
        touch_reload_token(Path(token))
        return {"scope": "all_workers", "previous_version": previous, "model_version": None,
                "source": models.source}
    try:
        clf = await run_in_threadpool(models.load)
    except Exception as err:
        raise ApiError(503, "reload_failed", f"the model could not be reloaded; the previous one stays in "
                                             f"service ({type(err).__name__}: {err})") from err
    log.info("model reloaded", extra={"fields": {"version": clf.version, "trigger": "api"}})
    return {"scope": "this_process", "previous_version": previous, "model_version": clf.version,
            "source": models.source}


@v1.post("/feedback", response_model=FeedbackAck, status_code=201, tags=["feedback"],
         summary="Record an agent's correction")
async def add_feedback(body: FeedbackRequest, store: FeedbackDep) -> dict[str, Any]:
    """Stored in one transaction; 201 means it is committed and will be in `ticket-nlp feedback export`."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return await run_in_threadpool(store.add, body.model_dump())
    except FeedbackError as err:
        raise ApiError(422, "invalid_request", str(err)) from err
    except SQLAlchemyError as err:
        log.error("feedback not stored", extra={"fields": {"error": type(err).__name__}})
        raise ApiError(503, "feedback_unavailable", "the feedback store failed; nothing was stored, retry") from err


@v1.get("/feedback", response_model=FeedbackList, tags=["feedback"], summary="Recent corrections")
async def list_feedback(store: FeedbackDep,
                        limit: Annotated[int, Query(ge=1, le=500, description="How many, newest first.")] = 20
                        ) -> dict[str, Any]:
    count, items = await run_in_threadpool(lambda: (store.count(), store.recent(limit)))
    return {"count": count, "items": items}


def job_view(job: dict[str, Any]) -> dict[str, Any]:
    done = job["status"] == "done"
    return {**job, "result_url": f"/v1/jobs/{job['id']}/result" if done else None,
            "report_url": f"/v1/jobs/{job['id']}/report" if done else None}


def _job(jobs: JobStore, job_id: str) -> dict[str, Any]:
    try:
        return jobs.get(job_id)
    except KeyError:
        raise ApiError(404, "not_found", f"no upload job {job_id[:40]!r}") from None


@v1.post("/jobs", response_model=JobOut, status_code=202, tags=["jobs"], summary="Score an uploaded export")
async def create_job(file: Annotated[UploadFile, File(description=f"An export: {', '.join(UPLOAD_FORMATS)}")],
                     clf: ClassifierDep, jobs: JobsDep,
                     text_col: Annotated[str | None, Form(max_length=200)] = None,
                     reason_col: Annotated[str | None, Form(max_length=200)] = None) -> dict[str, Any]:
    """Scored in the background like `ticket-nlp score`; poll the job, then download the result."""
    try:
        job = await run_in_threadpool(jobs.create, file.filename or "", file.file)
    except JobError as err:
        raise ApiError(422, "invalid_request", str(err)) from err
    jobs.submit(job["id"], clf, text_col or None, reason_col or None)
    return job_view(job)


JOB_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No such job."},
    409: {"model": ErrorResponse, "description": "The job has not finished (or failed)."},
}


@v1.get("/jobs/{job_id}", response_model=JobOut, tags=["jobs"], summary="An upload job's progress",
        responses=JOB_ERRORS)
async def get_job(job_id: str, jobs: JobsDep) -> dict[str, Any]:
    return job_view(_job(jobs, job_id))


def _finished(jobs: JobStore, job_id: str) -> dict[str, Any]:
    job = _job(jobs, job_id)
    if job["status"] != "done":
        raise ApiError(409, "not_ready", f"the job is {job['status']}" + (f": {job['error']}" if job["error"] else ""))
    return job


@v1.get("/jobs/{job_id}/result", tags=["jobs"], summary="Download the scored file",
        response_class=FileResponse, responses={200: {"description": "The scored export."}, **JOB_ERRORS})
async def job_result(job_id: str, jobs: JobsDep) -> FileResponse:
    _finished(jobs, job_id)
    return FileResponse(jobs.result_path(job_id), filename=jobs.result_name(job_id))


@v1.get("/jobs/{job_id}/report", tags=["jobs"], summary="The job's HTML report",
        responses={200: {"description": "The report page.", "content": {"text/html": {}}}, **JOB_ERRORS})
async def job_report(job_id: str, jobs: JobsDep) -> FileResponse:
    _finished(jobs, job_id)
    return FileResponse(jobs.report_path(job_id), media_type="text/html; charset=utf-8")


# --- the app --------------------------------------------------------------------------------------
def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """The app factory uvicorn calls (``ticket_nlp.api:create_app --factory``)."""
    settings = settings or ApiSettings.from_env()
    models = ModelHolder(settings.model)
    logging.getLogger("ticket_nlp").setLevel(settings.log_level.upper())
    if not logging.getLogger("ticket_nlp").handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        logging.getLogger("ticket_nlp").addHandler(handler)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # The token as it was before this worker read its model: a reload asked for while it loads
        # (a model replaced a moment after it read the old one) still reaches it.
        token = os.environ.get(RELOAD_TOKEN_ENV)
        token_seen = read_reload_token(Path(token)) if token else ""
        try:
            app.state.feedback = await run_in_threadpool(FeedbackStore, settings.feedback_db)
        except Exception as err:  # the API still labels tickets; /v1/feedback answers 503
            log.error("feedback store unavailable", extra={"fields": {"error": f"{type(err).__name__}: {err}"}})
        try:
            clf = await run_in_threadpool(models.load)
            log.info("model loaded", extra={"fields": {"version": clf.version, "source": settings.model}})
        except Exception:  # keep serving /healthz; /readyz says 503 until a reload succeeds
            log.error("model failed to load", extra={"fields": {"source": settings.model, "error": models.error}})
        loop = asyncio.get_running_loop()
        with suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no SIGHUP
            loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(_reload(models, "SIGHUP")))
        watcher = asyncio.ensure_future(_watch_reload_token(models, Path(token), token_seen)) if token else None
        yield
        if watcher is not None:
            watcher.cancel()
        with suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGHUP)
        app.state.jobs.shutdown()
        if app.state.feedback is not None:
            app.state.feedback.dispose()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())

    app = FastAPI(
        title="ticket-nlp",
        version=__version__,
        summary="Label Chinese after-sales tickets and flag claimed reasons the buyer's words contradict.",
        description=("Labels: " + ", ".join(f"`{k}` {v}" for k, v in LABELS_ZH.items())
                     + ". Send `X-API-Key` when the server has keys configured. Errors share one shape: "
                       "`{\"error\": {\"status\", \"code\", \"message\", \"request_id\"}}`."),
        lifespan=lifespan,
    )
    app.state.settings, app.state.models = settings, models
    app.state.feedback, app.state.jobs = None, JobStore(settings.jobs_dir)
    app.include_router(v1)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)

    @app.get("/healthz", response_model=Health, tags=["ops"], summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", response_model=Ready, tags=["ops"], summary="A model is loaded and serving",
             responses={503: {"model": ErrorResponse}})
    async def readyz() -> dict[str, str]:
        if models.classifier is None:
            raise ApiError(503, "model_unavailable", f"no model is loaded ({models.error or 'still loading'})")
        return {"status": "ready", "model_version": models.classifier.version}

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(metrics_payload(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=HTMLResponse, tags=["console"], summary="The agent console page")
    async def console_page() -> HTMLResponse:
        page = STATIC_DIR / "console.html"
        if not page.exists():
            raise ApiError(404, "not_found", "the console page is not installed")
        return HTMLResponse(page.read_text(encoding="utf-8"))

    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")

    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "POST"], allow_headers=["X-API-Key", "Content-Type", "X-Request-ID"],
                           expose_headers=["X-Request-ID"])
    app.add_middleware(RequestContext, max_body_bytes=settings.max_body_bytes,
                       max_upload_bytes=settings.max_upload_bytes)
    return app


async def _reload(models: ModelHolder, trigger: str) -> None:
    try:
        clf = await run_in_threadpool(models.load)
        log.info("model reloaded", extra={"fields": {"version": clf.version, "trigger": trigger}})
    except Exception:
        log.error(f"reload on {trigger} failed; the previous model stays in service",
                  extra={"fields": {"error": models.error}})


def touch_reload_token(token: Path) -> None:
    """Give the token new content (atomically): every worker watching it reloads."""
    tmp = token.with_name(f"{token.name}.{os.getpid()}.tmp")
    tmp.write_text(uuid.uuid4().hex, encoding="utf-8")
    os.replace(tmp, token)


def read_reload_token(token: Path) -> str:
    """The token's content; "" while it does not exist (a worker started outside ``run``)."""
    try:
        return token.read_text(encoding="utf-8")
    except OSError:
        return ""


async def _watch_reload_token(models: ModelHolder, token: Path, seen: str) -> None:
    """Several workers: reload in place when the token changes from ``seen``. In place rather than
    by replacing worker processes, because a process that exits cuts its keep-alive connections,
    and a client sending on one at that moment gets a reset."""
    while True:
        await asyncio.sleep(RELOAD_POLL_SECONDS)
        current = read_reload_token(token)
        if current != seen:
            seen = current
            await _reload(models, "reload token")


def run(host: str, port: int, workers: int, log_level: str) -> None:
    """Run the app under uvicorn (``ticket-nlp serve``). With several workers, the supervisor's
    SIGHUP rewrites the reload token instead of replacing the workers (uvicorn's default)."""
    import tempfile

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from ticket_nlp.observability import log_config

    config = uvicorn.Config(
        "ticket_nlp.api:create_app", factory=True, host=host, port=port, workers=workers,
        log_config=log_config(log_level), access_log=False, timeout_graceful_shutdown=10,
        # a new worker imports scikit-learn and loads the model before it answers the supervisor's
        # ping; uvicorn's 5 s default kills it over and over on a busy machine
        timeout_worker_healthcheck=60)
    if workers == 1:
        uvicorn.Server(config).run()
        return
    state = Path(tempfile.mkdtemp(prefix="ticket-nlp-serve-"))
    token = state / "reload-token"
    touch_reload_token(token)
    os.environ[RELOAD_TOKEN_ENV] = str(token)
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # /metrics sums the workers through these files
        (state / "metrics").mkdir()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(state / "metrics")

    class Supervisor(Multiprocess):
        def handle_hup(self) -> None:
            log.info("SIGHUP: every worker reloads its model in place")
            touch_reload_token(token)

    Supervisor(config, sockets=[config.bind_socket()]).run()
