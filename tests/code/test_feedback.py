"""Feedback store (SQLite, PostgreSQL when available), export into training, and the API's
feedback, upload-job and console routes against the real server."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import threading
import time
import uuid

import httpx
import pytest

from tests.conftest import CORPUS, ROOT, start_server, stop_server
from ticket_nlp.data import LabelledSet, load_labelled
from ticket_nlp.feedback import FeedbackError, FeedbackStore

CORRECTION = {"text": "衣服有股刺鼻的味道，洗了两次还在", "claimed_reason": "七天无理由退货", "predicted": "no_reason_return",
              "correct_label": "quality_defect", "ticket_id": "AS-77", "agent": "小王", "model_version": "v1"}


@pytest.fixture
def store(tmp_path):
    s = FeedbackStore(f"sqlite:///{tmp_path / 'fb.db'}")
    yield s
    s.dispose()


def test_store_keeps_every_accepted_correction(store):
    ack = store.add(CORRECTION)
    assert ack["id"] == 1 and ack["created_at"]
    errors = []

    def writer(k: int) -> None:
        for i in range(25):
            try:
                store.add({**CORRECTION, "ticket_id": f"T{k}-{i}"})
            except Exception as err:  # pragma: no cover - the assertion below reports it
                errors.append(err)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and store.count() == 101
    assert store.recent(1)[0]["id"] == 101 and store.recent(1)[0]["correct_label_zh"] == "质量问题"


@pytest.mark.parametrize("bad, field", [
    ({"text": ""}, "text"), ({"text": "   "}, "text"), ({"text": "开" * 2001}, "2000"),
    ({"correct_label": "broken"}, "correct_label"), ({"predicted": None}, "predicted"),
    ({"agent": "x" * 101}, "agent"), ({"ticket_id": 5}, "ticket_id"),
])
def test_store_rejects_malformed_corrections_with_the_reason(store, bad, field):
    with pytest.raises(FeedbackError, match=field):
        store.add({**CORRECTION, **bad})
    assert store.count() == 0


def test_export_is_training_data_and_joins_the_corpus(store, tmp_path):
    store.add(CORRECTION)
    store.add({**CORRECTION, "text": "尺码偏大，想换小一号", "correct_label": "size_exchange", "ticket_id": None,
               "claimed_reason": None, "product": "牛仔裤"})
    out = tmp_path / "corrections.csv"
    assert store.export(out) == 2 and not (tmp_path / "corrections.csv.partial").exists()
    corrections = load_labelled(out)
    assert corrections.labels == ["quality_defect", "size_exchange"] and corrections.splits == ["train", "train"]
    assert corrections.claimed == ["七天无理由退货", None]
    assert corrections.products == [None, "牛仔裤"]
    # beside the corpus: the corpus keeps its splits, the corrections are training rows
    from ticket_nlp.train import ensure_splits

    both = ensure_splits(LabelledSet.concat([load_labelled(CORPUS), corrections]))
    train_texts = set(both.split("train").texts)
    assert CORRECTION["text"] in train_texts and "尺码偏大，想换小一号" in train_texts
    assert len(both.split("valid")) == len(load_labelled(CORPUS).split("valid"))
    assert both.products[-1] == "牛仔裤" and both.products[0]  # the product column survives the join


def test_a_store_from_before_the_product_column_gets_it_and_keeps_its_rows(tmp_path):
    import sqlite3

    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:  # the table as the first version made it
        conn.execute("CREATE TABLE feedback (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at DATETIME NOT NULL, "
                     "ticket_id VARCHAR(128), text TEXT NOT NULL, claimed_reason VARCHAR(200), "
                     "predicted VARCHAR(32) NOT NULL, correct_label VARCHAR(32) NOT NULL, agent VARCHAR(100), "
                     "model_version VARCHAR(64))")
        conn.execute("INSERT INTO feedback (created_at, text, predicted, correct_label) "
                     "VALUES ('2026-11-01 10:00:00', '袖口开线', 'other', 'quality_defect')")
    store = FeedbackStore(f"sqlite:///{db}")
    try:
        store.add({**CORRECTION, "product": "红富士苹果"})
        rows = list(store.rows())
        assert [r["product"] for r in rows] == [None, "红富士苹果"] and rows[0]["text"] == "袖口开线"
    finally:
        store.dispose()


def test_rows_without_a_split_are_split_not_dropped():
    from ticket_nlp.train import ensure_splits

    data = LabelledSet(["a"] * 3 + [f"text {i}" for i in range(200)], ["other"] * 203,
                       splits=["train", "valid", "test"] + [""] * 200)
    ensure_splits(data)
    assert set(data.splits) == {"train", "valid", "test"} and "" not in data.splits


@pytest.mark.skipif(not os.environ.get("TICKET_NLP_TEST_POSTGRES_URL"),
                    reason="set TICKET_NLP_TEST_POSTGRES_URL to a PostgreSQL database (CI starts one)")
def test_postgresql_store():
    from sqlalchemy import text

    store = FeedbackStore(os.environ["TICKET_NLP_TEST_POSTGRES_URL"])
    try:
        with store.engine.begin() as conn:
            conn.execute(text("DELETE FROM feedback"))
        marker = uuid.uuid4().hex
        ack = store.add({**CORRECTION, "ticket_id": marker})
        assert store.count() == 1 and store.recent(5)[0]["ticket_id"] == marker and ack["id"] >= 1
        with pytest.raises(FeedbackError):
            store.add({**CORRECTION, "correct_label": "nope"})
        assert store.count() == 1
    finally:
        store.dispose()


def test_feedback_export_cli(tmp_path):
    db = f"sqlite:///{tmp_path / 'fb.db'}"
    s = FeedbackStore(db)
    s.add(CORRECTION)
    s.dispose()
    out = tmp_path / "c.csv"
    r = subprocess.run([sys.executable, "-m", "ticket_nlp.cli", "feedback", "export", "--db", db, "-o", str(out)],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with open(out, encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["description"] == CORRECTION["text"] and rows[0]["label"] == "quality_defect"


# --- through the API ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def http(api_server):
    with httpx.Client(base_url=api_server.url, headers=api_server.headers, timeout=30) as client:
        yield client


def test_feedback_endpoint_accepts_and_lists(http):
    marker = uuid.uuid4().hex[:12]
    r = http.post("/v1/feedback", json={**CORRECTION, "ticket_id": marker})
    assert r.status_code == 201, r.text
    listed = http.get("/v1/feedback", params={"limit": 5}).json()
    assert listed["items"][0]["ticket_id"] == marker and listed["items"][0]["id"] == r.json()["id"]
    bad = http.post("/v1/feedback", json={**CORRECTION, "correct_label": "broken"})
    assert bad.status_code == 422 and "correct_label" in bad.json()["error"]["message"]
    assert http.get("/v1/feedback").json()["count"] == listed["count"]


def test_feedback_survives_a_server_restart(model_dir, tmp_path):
    env = {"TICKET_NLP_FEEDBACK_DB": f"sqlite:///{tmp_path / 'fb.db'}", "TICKET_NLP_API_KEYS": ""}
    server = start_server(model_dir, tmp_path / "one.log", env)
    try:
        ack = httpx.post(f"{server.url}/v1/feedback", json=CORRECTION).json()
    finally:
        stop_server(server)
    server = start_server(model_dir, tmp_path / "two.log", env)
    try:
        items = httpx.get(f"{server.url}/v1/feedback").json()["items"]
        assert [i["id"] for i in items] == [ack["id"]] and items[0]["text"] == CORRECTION["text"]
    finally:
        stop_server(server)
    out = tmp_path / "corrections.csv"
    subprocess.run([sys.executable, "-m", "ticket_nlp.cli", "feedback", "export", "--db", env["TICKET_NLP_FEEDBACK_DB"],
                    "-o", str(out)], check=True, capture_output=True)
    assert load_labelled(out).texts == [CORRECTION["text"]]


def wait_for_job(http, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = http.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def test_upload_job_scores_the_export_and_serves_result_and_report(http):
    sample = ROOT / "data" / "samples" / "pdd_aftersales_gbk.csv"
    with open(sample, "rb") as f:
        r = http.post("/v1/jobs", files={"file": (sample.name, f, "text/csv")})
    assert r.status_code == 202, r.text
    job = wait_for_job(http, r.json()["id"])
    assert job["status"] == "done", job
    assert job["progress"] == 1.0 and job["summary"]["rows"] == job["rows_done"]
    result = http.get(job["result_url"])
    assert result.status_code == 200
    assert "pdd_aftersales_gbk.scored.csv" in result.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(result.content.decode("utf-8-sig"))))
    with open(sample, encoding="gb18030", newline="") as f:
        expected = sum(1 for _ in csv.reader(f))
    assert len(rows) == expected and rows[0][-1] == "tn_evidence"
    report = http.get(job["report_url"])
    assert report.status_code == 200 and "text/html" in report.headers["content-type"] and "<svg" in report.text


def test_upload_job_errors(http, api_server):
    r = http.post("/v1/jobs", files={"file": ("notes.docx", b"hello", "application/octet-stream")})
    assert r.status_code == 422 and ".xlsx" in r.json()["error"]["message"]
    r = http.post("/v1/jobs", files={"file": ("old.xls", b"hello", "application/vnd.ms-excel")})
    assert r.status_code == 422 and "save it as .xlsx" in r.json()["error"]["message"]
    # a renamed export without an extension is read by its content
    r = http.post("/v1/jobs", files={"file": ("export", "问题描述,申请原因\n袖口开线了,七天无理由退货\n".encode(), "text/csv")})
    job = wait_for_job(http, r.json()["id"])
    assert job["status"] == "done" and job["filename"] == "export.csv" and job["rows_done"] == 1
    r = http.post("/v1/jobs", files={"file": ("empty.csv", b"", "text/csv")})
    job = wait_for_job(http, r.json()["id"])
    assert job["status"] == "failed" and job["error"] and "empty.csv" in job["error"]
    assert http.get(f"/v1/jobs/{job['id']}/result").status_code == 409
    assert http.get(f"/v1/jobs/{'0' * 32}").status_code == 404
    assert http.get("/v1/jobs/..%2F..%2Fetc").status_code == 404
    big = b"a,b\n" + b"x" * (3 * 1024 * 1024)
    r = http.post("/v1/jobs", files={"file": ("big.csv", big, "text/csv")})
    assert r.status_code == 413 and "limit" in r.json()["error"]["message"]


def test_console_page_is_served_without_a_key(api_server):
    r = httpx.get(f"{api_server.url}/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "<html" in r.text.lower() and "/v1/classify" in r.text
    assert "https://" not in r.text and "http://" not in r.text.replace("http://www.w3.org", "")  # no CDN
