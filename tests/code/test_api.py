"""The API against a real uvicorn process on loopback (the session's ``api_server``)."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time

import httpx
import pytest

from tests.conftest import CORS_ORIGIN
from ticket_nlp.config import LABELS, MAX_BATCH_ITEMS, MAX_TEXT_CHARS
from ticket_nlp.reasons import ReasonMap


@pytest.fixture(scope="module")
def http(api_server):
    with httpx.Client(base_url=api_server.url, headers=api_server.headers, timeout=30) as client:
        yield client


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert error["status"] == status and error["code"] == code
    assert error["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return error


# --- endpoints ------------------------------------------------------------------------------------
def test_health_endpoints_are_open(api_server):
    assert httpx.get(f"{api_server.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{api_server.url}/readyz").json()
    assert ready["status"] == "ready" and ready["model_version"]


def test_classify_flags_a_contradicted_claim_with_its_evidence(http, clf):
    text = "收到就发现袖口开线了，要求退货"
    r = http.post("/v1/classify", json={"text": text, "claimed_reason": "七天无理由退货", "ticket_id": "AS-1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ticket_id"] == "AS-1" and body["label"] == "quality_defect" and body["label_zh"] == "质量问题"
    assert body["mismatch"]["status"] == "mismatch" and body["mismatch"]["severity"] == "high"
    assert body["mismatch"]["claimed_label"] == "no_reason_return"
    assert body["evidence"] and all(text[e["start"]:e["end"]] == e["term"] for e in body["evidence"])
    assert body["model_version"] == http.get("/v1/model").json()["version"]
    # the server answers exactly what the library answers
    [local] = clf.predict([text], ["七天无理由退货"])
    assert {k: body[k] for k in local.to_dict()} == json.loads(json.dumps(local.to_dict(), ensure_ascii=False))


def test_classify_without_claim_and_with_odd_text(http):
    for text in ("鞋子偏小一码，想换大一码", "？？", "12345", "😡😡😡", " ", "ｘｘｘ\u0000"):
        r = http.post("/v1/classify", json={"text": text})
        assert r.status_code == 200, (text, r.text)
        body = r.json()
        assert body["label"] in LABELS and body["mismatch"]["status"] == "not_claimed"
        assert abs(sum(body["probabilities"].values()) - 1) < 0.01


def test_batch_keeps_order_and_equals_single_calls(http):
    items = [{"text": "快递三天了还没到", "ticket_id": "a"},
             {"text": "就是不喜欢颜色", "claimed_reason": "质量问题", "ticket_id": "b"},
             {"text": "裤子短了想换长一码", "ticket_id": "c"}]
    r = http.post("/v1/classify/batch", json={"items": items})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == 3 and [x["ticket_id"] for x in body["results"]] == ["a", "b", "c"]
    for item, result in zip(items, body["results"], strict=True):
        assert http.post("/v1/classify", json=item).json() == result


def test_product_decides_the_fit_rule_as_the_library_does(http, clf):
    for product in ("牛仔裤", "红富士苹果"):
        body = http.post("/v1/classify", json={"text": "太小了", "product": product}).json()
        [local] = clf.predict(["太小了"], products=[product])
        assert body["label"] == local.label and body["probabilities"] == local.probabilities
    assert http.post("/v1/classify", json={"text": "太小了", "product": "牛仔裤"}).json()["label"] == "size_exchange"
    assert http.post("/v1/classify", json={"text": "太小了", "product": "红富士苹果"}).json()["label"] != "size_exchange"


def test_batch_size_limit(http):
    ok = http.post("/v1/classify/batch", json={"items": [{"text": "质量太差了"}] * MAX_BATCH_ITEMS})
    assert ok.status_code == 200 and ok.json()["count"] == MAX_BATCH_ITEMS
    error = assert_error(http.post("/v1/classify/batch", json={"items": [{"text": "质量差"}] * (MAX_BATCH_ITEMS + 1)}),
                         422, "invalid_request")
    assert str(MAX_BATCH_ITEMS) in error["message"] and "items" in error["message"]
    assert_error(http.post("/v1/classify/batch", json={"items": []}), 422, "invalid_request")


def test_text_length_limit_says_the_limit(http):
    http.post("/v1/classify", json={"text": "开" * MAX_TEXT_CHARS}).raise_for_status()
    error = assert_error(http.post("/v1/classify", json={"text": "开" * (MAX_TEXT_CHARS + 1)}), 422, "invalid_request")
    assert f"at most {MAX_TEXT_CHARS} characters" in error["message"] and "text" in error["message"]
    assert "开开开" not in json.dumps(error)  # the input is not echoed back


def test_malformed_requests_get_the_error_shape(http):
    assert_error(http.post("/v1/classify", content=b"{not json", headers={"content-type": "application/json"}),
                 422, "invalid_request")
    assert_error(http.post("/v1/classify", content=b'{"text": "\xff\xfe"}', headers={"content-type": "application/json"}),
                 422, "invalid_request")
    assert_error(http.post("/v1/classify", json={"claimed_reason": "质量问题"}), 422, "invalid_request")
    assert_error(http.post("/v1/classify", json={"text": 5}), 422, "invalid_request")
    assert_error(http.post("/v1/classify", json=["text"]), 422, "invalid_request")
    assert_error(http.get("/v1/nothing-here"), 404, "not_found")
    assert_error(http.get("/v1/classify"), 405, "method_not_allowed")


def test_body_limit_413_with_and_without_content_length(http):
    big = {"items": [{"text": "开线" * 999}] * 100}  # ~600 kB, over the test server's 512 kB
    assert_error(http.post("/v1/classify/batch", json=big), 413, "body_too_large")

    def chunks():
        payload = json.dumps(big, ensure_ascii=False).encode()
        for i in range(0, len(payload), 65536):
            yield payload[i:i + 65536]

    assert_error(http.post("/v1/classify/batch", content=chunks(), headers={"content-type": "application/json"}),
                 413, "body_too_large")


def test_model_and_reasons(http):
    info = http.get("/v1/model").json()
    assert info["labels"] == list(LABELS) and set(info["labels_zh"]) == set(LABELS)
    assert set(info["thresholds"]["review"]) == set(LABELS) and 0 < info["thresholds"]["mismatch"] < 1
    assert info["metrics"]["valid"]["macro_f1"] > 0.5 and info["trained_at"] and info["loaded_at"]
    reasons = http.get("/v1/reasons").json()
    assert reasons["count"] == len(ReasonMap.load()) == len(reasons["reasons"])
    assert {"reason": "七天无理由退货", "labels": ["no_reason_return"]} in reasons["reasons"]


# --- safety ---------------------------------------------------------------------------------------
def test_api_key_required(api_server):
    url = f"{api_server.url}/v1/classify"
    assert_error(httpx.post(url, json={"text": "质量差"}), 401, "unauthorized")
    assert_error(httpx.post(url, json={"text": "质量差"}, headers={"X-API-Key": "wrong"}), 401, "unauthorized")
    assert httpx.post(url, json={"text": "质量差"}, headers={"X-API-Key": "second-key"}).status_code == 200
    assert_error(httpx.get(f"{api_server.url}/v1/model"), 401, "unauthorized")


def test_cors_only_for_configured_origins(api_server):
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-api-key"}
    allowed = httpx.options(f"{api_server.url}/v1/classify", headers={"Origin": CORS_ORIGIN, **preflight})
    assert allowed.headers.get("access-control-allow-origin") == CORS_ORIGIN
    other = httpx.options(f"{api_server.url}/v1/classify", headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in other.headers


def test_cors_is_off_by_default():
    from ticket_nlp.api import create_app
    from ticket_nlp.config import ApiSettings

    assert ApiSettings().cors_origins == ()
    app = create_app(ApiSettings(model="unused"))
    assert not any(m.cls.__name__ == "CORSMiddleware" for m in app.user_middleware)


def test_request_id_is_kept_or_made(http):
    r = http.get("/v1/model", headers={"X-Request-ID": "agent-42.call-7"})
    assert r.headers["x-request-id"] == "agent-42.call-7"
    r = http.get("/v1/model", headers={"X-Request-ID": "bad id with spaces"})
    assert r.headers["x-request-id"] != "bad id with spaces" and len(r.headers["x-request-id"]) == 16


def test_logs_are_json_and_masked(http, api_server):
    phone, order = "13812345678", "202611280012345678"
    http.post("/v1/classify", json={"text": f"联系我{phone}，订单{order}，寄到北京市朝阳区建国路88号",
                                    "ticket_id": order})
    http.get(f"/v1/nothing/{phone}")
    time.sleep(0.3)
    lines = api_server.log_lines()
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    assert any(e.get("path") == "/v1/classify" and e.get("status") == 200 for e in entries)
    assert any("PHONE" in e.get("path", "") for e in entries)
    text = "\n".join(lines)
    assert phone not in text and order not in text and "建国路" not in text


def test_unexpected_errors_hide_the_stack(tmp_path):
    """A handler bug answers 500 in the error shape, with no trace (in-process: a real server has
    no route that fails on purpose)."""
    import asyncio

    from ticket_nlp.api import create_app
    from ticket_nlp.config import ApiSettings

    app = create_app(ApiSettings(model=str(tmp_path)))

    @app.get("/boom")
    async def boom():
        raise RuntimeError("secret internals 13812345678")

    async def call():
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/boom")

    r = asyncio.run(call())
    error = assert_error(r, 500, "internal_error")
    assert "secret" not in r.text and "RuntimeError" not in r.text and error["request_id"]


# --- observability --------------------------------------------------------------------------------
def test_metrics_count_requests_labels_mismatches_and_errors(http, api_server):
    http.post("/v1/classify", json={"text": "袖口开线了", "claimed_reason": "七天无理由退货"})
    httpx.post(f"{api_server.url}/v1/classify", json={"text": "x"})  # 401
    text = httpx.get(f"{api_server.url}/metrics").text
    assert 'ticket_nlp_requests_total{method="POST",route="/v1/classify",status="200"}' in text
    assert 'ticket_nlp_request_duration_seconds_bucket{le="0.025",route="/v1/classify"}' in text
    assert 'ticket_nlp_predictions_total{label="quality_defect"}' in text
    assert 'ticket_nlp_mismatches_total{severity="high"}' in text
    assert 'ticket_nlp_errors_total{code="unauthorized"}' in text
    assert "ticket_nlp_model_info{version=" in text


# --- reload ---------------------------------------------------------------------------------------
class Traffic:
    """Threads posting /v1/classify until the block ends; every answer is counted and every failure
    kept (a non-200, a body without a label, or a reset connection)."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, text: str = "快递丢了，一直没收到",
                 threads: int = 3):
        self.url, self.headers, self.text = url, headers or {}, text
        self.failures: list[str] = []
        self.answered = 0
        self._done = threading.Event()
        self._threads = [threading.Thread(target=self._post) for _ in range(threads)]

    def _post(self) -> None:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=30) as client:
            while not self._done.is_set():
                try:
                    r = client.post("/v1/classify", json={"text": self.text})
                except httpx.HTTPError as err:
                    self.failures.append(repr(err))
                    continue
                self.answered += 1
                if r.status_code != 200 or r.json()["label"] not in LABELS:
                    self.failures.append(f"{r.status_code} {r.text[:200]}")

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        for thread in self._threads:
            thread.join()


def test_reload_under_traffic_fails_no_request(api_server, http):
    before = http.get("/v1/model").json()["loaded_at"]
    with Traffic(api_server.url, api_server.headers, threads=4) as traffic:
        time.sleep(0.5)
        r = http.post("/v1/admin/reload")
        assert r.status_code == 200 and r.json()["scope"] == "this_process" and r.json()["model_version"]
        os.kill(api_server.process.pid, signal.SIGHUP)  # `ticket-nlp serve` runs uvicorn in this process
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and '"trigger": "SIGHUP"' not in "\n".join(api_server.log_lines()):
            time.sleep(0.2)
        time.sleep(0.5)
    assert '"trigger": "SIGHUP"' in "\n".join(api_server.log_lines())
    assert traffic.answered > 20 and traffic.failures == []
    assert http.get("/v1/model").json()["loaded_at"] >= before
    metrics = httpx.get(f"{api_server.url}/metrics").text
    reloads = re.search(r'ticket_nlp_model_reloads_total\{outcome="ok"\} ([0-9.]+)', metrics)
    assert reloads and float(reloads.group(1)) >= 3  # start, the API call, SIGHUP


def test_openapi_is_a_usable_contract(http):
    spec = http.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/v1/classify", "/v1/classify/batch", "/v1/model", "/v1/reasons", "/v1/admin/reload",
                 "/healthz", "/readyz"):
        assert path in paths
    examples = paths["/v1/classify"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    assert any("开线" in e["value"]["text"] for e in examples.values())
    assert "APIKeyHeader" in spec["components"]["securitySchemes"]
    assert spec["components"]["schemas"]["ClassifyResponse"]["properties"]["label"]["enum"] == list(LABELS)


def _worker_pids(supervisor: int) -> set[int]:
    try:
        with open(f"/proc/{supervisor}/task/{supervisor}/children") as f:
            children = f.read().split()
    except OSError:
        return set()
    pids = set()
    for pid in map(int, children):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"spawn_main" in f.read():
                    pids.add(pid)
        except OSError:
            continue
    return pids


def test_a_reload_asked_for_while_a_worker_loads_still_reaches_it(model_dir, tmp_path, monkeypatch):
    """Several workers: the reload token touched while a worker is still reading its model (a model
    replaced just after it read the old one) makes that worker load again once it serves."""
    import asyncio

    from ticket_nlp import api
    from ticket_nlp.config import ApiSettings

    token = tmp_path / "reload-token"
    api.touch_reload_token(token)
    monkeypatch.setenv(api.RELOAD_TOKEN_ENV, str(token))
    loads: list[str] = []
    real_load = api.ModelHolder.load

    def load(self):
        clf = real_load(self)
        if not loads:
            api.touch_reload_token(token)  # asked for while this worker was loading
        loads.append(clf.version)
        return clf

    monkeypatch.setattr(api.ModelHolder, "load", load)
    app = api.create_app(ApiSettings(model=str(model_dir), feedback_db=f"sqlite:///{tmp_path / 'feedback.db'}",
                                     jobs_dir=str(tmp_path / "jobs")))

    async def serve_a_while() -> None:
        async with app.router.lifespan_context(app):
            deadline = time.monotonic() + 20
            while len(loads) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await asyncio.sleep(3 * api.RELOAD_POLL_SECONDS)  # and no more than once

    asyncio.run(serve_a_while())
    assert len(loads) == 2


def test_reload_with_several_workers_reloads_each_in_place_without_failures(model_dir, tmp_path):
    from tests.conftest import start_server, stop_server

    server = start_server(model_dir, tmp_path / "workers.log", {"TICKET_NLP_API_KEYS": ""}, workers=2)
    try:
        deadline = time.monotonic() + 60
        while len(_worker_pids(server.process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = _worker_pids(server.process.pid)
        assert len(workers) == 2
        while "\n".join(server.log_lines()).count('"model loaded"') < 2 and time.monotonic() < deadline:
            time.sleep(0.2)  # both workers serving: a busy machine can take a while over the second
        def reloads() -> int:
            return "\n".join(server.log_lines()).count('"trigger": "reload token"')

        with Traffic(server.url, text="发错颜色了，要退货") as traffic:
            r = httpx.post(f"{server.url}/v1/admin/reload")
            assert r.status_code == 200 and r.json()["scope"] == "all_workers"
            deadline = time.monotonic() + 90
            while reloads() < 2 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert reloads() == 2  # each worker once
            os.kill(server.process.pid, signal.SIGHUP)  # the supervisor: same, without replacing anyone
            while reloads() < 4 and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(0.5)
        assert reloads() == 4
        assert _worker_pids(server.process.pid) == workers  # reloaded in place, not replaced
        assert traffic.failures == [] and traffic.answered > 20
        metrics = httpx.get(f"{server.url}/metrics").text  # summed over both workers
        assert 'ticket_nlp_model_reloads_total{outcome="ok"} 6.0' in metrics  # 2 starts + 4 reloads
    finally:
        stop_server(server)
