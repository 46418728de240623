"""The agent console end to end: headless system Chromium against a real ``ticket-nlp serve``.

Every test drives the page served at ``/`` by the session's ``api_server`` (API keys configured,
2 MB upload limit) and checks what an agent sees: the label, the five confidence bars, the
evidence highlighted in the buyer's own characters, the mismatch banner, a correction stored
through ``/v1/feedback``, an export scored with a progress bar and downloaded, and the server's
error messages. One browser for the module, a fresh context (so fresh ``localStorage``) per test.

``TICKET_NLP_SCREENSHOT=docs/console.png`` saves the page right after the mismatch result.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.conftest import API_KEY

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("TICKET_NLP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
KEY_STORE = "ticket-nlp.apiKey"  # the page's localStorage key for the API key
GBK_EXPORT = ROOT / "data" / "samples" / "pdd_aftersales_gbk.csv"
MISMATCH_TEXT = "收到就发现袖口开线了，要求退货"
MISMATCH_REASON = "七天无理由退货"
DESKTOP = {"width": 1280, "height": 900}

expect.set_options(timeout=20_000)


@pytest.fixture(scope="module")
def browser() -> Browser:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: install the system package (apt-get install chromium) "
                    f"or point TICKET_NLP_CHROMIUM at one; the browser tests never download a browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def context(browser, api_server) -> BrowserContext:
    ctx = browser.new_context(viewport=DESKTOP, locale="zh-CN", accept_downloads=True)
    ctx.set_default_timeout(20_000)
    yield ctx
    ctx.close()


def open_console(context: BrowserContext, url: str, *, key: str | None = API_KEY) -> tuple[Page, list]:
    """The console with the API key already in localStorage (``key=None``: as a first visit)."""
    if key:
        context.add_init_script(f"localStorage.setItem({json.dumps(KEY_STORE)}, {json.dumps(key)})")
    page = context.new_page()
    errors: list = []
    page.on("pageerror", lambda err: errors.append(err))
    page.goto(url + "/")
    return page, errors


def wait_ready(page: Page) -> None:
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.get_by_test_id("model-version")).not_to_have_text("加载中…")


@pytest.fixture
def page(context, api_server) -> Page:
    page, errors = open_console(context, api_server.url)
    wait_ready(page)
    yield page
    assert not errors, f"JavaScript errors on the page: {errors}"


def classify(page: Page, text: str, reason: str | None = None, ticket_id: str | None = None) -> None:
    page.get_by_test_id("text").fill(text)
    page.get_by_test_id("reason").select_option(reason or "")
    if ticket_id:
        page.get_by_test_id("ticket-id").fill(ticket_id)
    page.get_by_test_id("analyze").click()


def api_classify(api_server, text: str, reason: str | None = None) -> dict:
    r = httpx.post(f"{api_server.url}/v1/classify", json={"text": text, "claimed_reason": reason},
                   headers=api_server.headers, timeout=10)
    r.raise_for_status()
    return r.json()


def csv_rows(data: bytes, encoding: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(encoding), newline="")))


# --- 1: classify, label, bars, highlights, banner; the API-key prompt on a first visit --------------
def test_classify_shows_label_bars_highlights_and_mismatch_banner(context, api_server):
    page, errors = open_console(context, api_server.url, key=None)

    # first visit: the page asks for the key, keeps it, and retries what was refused
    key_panel = page.get_by_test_id("key-panel")
    expect(key_panel).to_be_visible()
    page.get_by_label("API Key", exact=True).fill(API_KEY)
    page.get_by_test_id("api-key-save").click()
    expect(key_panel).to_be_hidden()
    wait_ready(page)
    assert page.evaluate(f"localStorage.getItem({json.dumps(KEY_STORE)})") == API_KEY
    expect(page.get_by_test_id("reason").locator(f"option[value='{MISMATCH_REASON}']")).to_have_count(1)

    page.get_by_label("问题描述").fill(MISMATCH_TEXT)
    page.get_by_label("申请原因").select_option(MISMATCH_REASON)
    page.get_by_label("问题描述").press("Control+Enter")

    expect(page.get_by_test_id("label")).to_have_text("质量问题")
    expect(page.get_by_test_id("label-key")).to_have_text("quality_defect")
    expect(page.get_by_test_id("confidence")).to_contain_text("%")

    bars = page.get_by_test_id("bar")
    expect(bars).to_have_count(5)
    expect(bars.filter(has_text="质量问题")).to_have_class("top")
    for name in ("质量问题", "尺码/换货", "物流问题", "七天无理由", "其他"):
        expect(bars.filter(has_text=name)).to_have_count(1)
    assert all(t.strip().endswith("%") for t in bars.locator(".pct").all_inner_texts())

    # the description re-rendered exactly, the evidence as <mark>s of the buyer's own characters
    highlighted = page.get_by_test_id("highlighted")
    expect(highlighted).to_have_text(MISMATCH_TEXT)
    marks = highlighted.locator("mark")
    expect(marks.first).to_be_visible()
    assert marks.count() >= 1
    for term in marks.all_inner_texts():
        assert term and term in MISMATCH_TEXT
    api = api_classify(api_server, MISMATCH_TEXT, MISMATCH_REASON)
    assert set(marks.all_inner_texts()) == {MISMATCH_TEXT[e["start"]:e["end"]] for e in api["evidence"]}
    assert "权重" in (marks.first.get_attribute("title") or "")

    banner = page.get_by_test_id("mismatch")
    expect(banner).to_have_attribute("data-status", "mismatch")
    expect(banner).to_have_attribute("data-severity", api["mismatch"]["severity"])
    expect(banner).to_contain_text(f"「{MISMATCH_REASON}」")
    expect(banner).to_contain_text("质量问题")
    expect(banner).to_have_class("banner high" if api["mismatch"]["severity"] == "high" else "banner low")

    shot = os.environ.get("TICKET_NLP_SCREENSHOT")
    if shot:
        page.set_viewport_size(DESKTOP)
        page.get_by_test_id("ticket-id").fill("AS-1001")
        page.get_by_test_id("analyze").click()
        expect(page.get_by_test_id("ticket")).to_contain_text("AS-1001")
        page.wait_for_timeout(400)  # the bars' width transition
        page.screenshot(path=str(ROOT / shot if not Path(shot).is_absolute() else shot))
    assert not errors, errors


def test_quiet_line_when_the_claim_agrees_or_is_unknown(page):
    classify(page, "快递一周了还没到，物流一直不更新", "快递一直未送达")
    banner = page.get_by_test_id("mismatch")
    expect(banner).to_have_attribute("data-status", "consistent")
    expect(banner).to_contain_text("一致")
    expect(banner).not_to_have_class("banner high")

    classify(page, "快递一周了还没到，物流一直不更新", None)
    expect(banner).to_have_attribute("data-status", "not_claimed")
    expect(banner).to_contain_text("未选择申请原因")


def test_the_product_field_decides_the_fit_rule(page, api_server):
    """The same "太小了" is a fit problem for trousers and not one for fruit, as the API says."""
    for product in ("牛仔裤", "红富士苹果"):
        page.get_by_label("商品（可选", exact=False).fill(product)
        classify(page, "太小了")
        r = httpx.post(f"{api_server.url}/v1/classify", json={"text": "太小了", "product": product},
                       headers=api_server.headers, timeout=10).json()
        expect(page.get_by_test_id("label-key")).to_have_text(r["label"])
    expect(page.get_by_test_id("label-key")).not_to_have_text("size_exchange")


def test_highlights_count_code_points_so_an_emoji_does_not_shift_them(page, api_server):
    text = "😅😅鞋子偏小一码，😭想换大一码"
    classify(page, text, "质量问题")
    highlighted = page.get_by_test_id("highlighted")
    expect(highlighted).to_have_text(text)
    api = api_classify(api_server, text, "质量问题")
    code_points = list(text)
    expected = {"".join(code_points[e["start"]:e["end"]]) for e in api["evidence"]}
    expect(highlighted.locator("mark")).to_have_count(len(api["evidence"]))
    assert set(highlighted.locator("mark").all_inner_texts()) == expected
    assert all("😅" not in t and "😭" not in t for t in expected)


# --- 2: a correction made in the page is stored -------------------------------------------------------
def test_correcting_a_label_posts_feedback(page, api_server, tmp_path):
    text, reason, ticket = "鞋子偏小，穿着挤脚，想换大一码", "质量问题", "AS-2002"
    classify(page, text, reason, ticket)
    expect(page.get_by_test_id("result")).to_be_visible()
    page.get_by_label("处理人（可选）").fill("客服小王")
    predicted = page.get_by_test_id("label-key").inner_text()

    fix = page.locator("[data-testid^='fb-to-']")
    expect(fix).to_have_count(4)
    correct = "other" if predicted != "other" else "quality_defect"
    page.get_by_test_id(f"fb-to-{correct}").click()
    status = page.get_by_test_id("fb-status")
    expect(status).to_contain_text("已记录，感谢")
    feedback_id = int(status.get_attribute("data-feedback-id"))
    expect(status).to_contain_text(f"#{feedback_id}")

    r = httpx.get(f"{api_server.url}/v1/feedback", params={"limit": 20}, headers=api_server.headers, timeout=10)
    r.raise_for_status()
    [item] = [i for i in r.json()["items"] if i["id"] == feedback_id]
    assert item["text"] == text
    assert item["claimed_reason"] == reason
    assert item["predicted"] == predicted
    assert item["correct_label"] == correct
    assert item["ticket_id"] == ticket
    assert item["agent"] == "客服小王"
    assert item["model_version"] == page.get_by_test_id("model-version").inner_text()
    expect(page.get_by_test_id("recent-feedback")).to_contain_text(text)

    # "✓ 判断正确" on the next ticket stores the prediction as the correct label; the agent is remembered
    page.reload()
    wait_ready(page)
    classify(page, MISMATCH_TEXT, MISMATCH_REASON)
    expect(page.get_by_test_id("label")).to_have_text("质量问题")
    expect(page.get_by_test_id("agent")).to_have_value("客服小王")
    page.get_by_test_id("fb-correct").click()
    expect(status).to_contain_text("已记录，感谢")
    confirmed = int(status.get_attribute("data-feedback-id"))
    items = httpx.get(f"{api_server.url}/v1/feedback", headers=api_server.headers, timeout=10).json()["items"]
    [item] = [i for i in items if i["id"] == confirmed]
    assert (item["predicted"], item["correct_label"], item["text"]) == ("quality_defect", "quality_defect",
                                                                        MISMATCH_TEXT)

    # ... and from there into training: `feedback export`, then train on the corpus and the export
    from tests.conftest import CORPUS
    from ticket_nlp.data import LabelledSet, load_labelled
    from ticket_nlp.train import train

    exported = tmp_path / "corrections.csv"
    subprocess.run([sys.executable, "-m", "ticket_nlp.cli", "feedback", "export", "--db", api_server.feedback_db,
                    "-o", str(exported)], check=True, capture_output=True)
    corrections = load_labelled(exported)
    assert (text, correct) in set(zip(corrections.texts, corrections.labels, strict=True))
    corpus = load_labelled(CORPUS)
    small = corpus.subset(range(0, len(corpus), 6))  # a sixth of the corpus keeps this quick
    model = train(LabelledSet.concat([small, corrections]), compare=False, log=lambda *a: None)
    data = model.metadata["data"]
    assert str(exported) in data["source"]
    assert data["train"] == len(small.split("train")) + len(corrections)  # every correction trained on


# --- 3: an export uploaded, scored with progress, downloaded; its report opened ------------------------
def test_upload_an_export_and_download_the_scored_file_and_report(page, context, tmp_path):
    page.get_by_test_id("file").set_input_files(GBK_EXPORT)
    expect(page.get_by_test_id("file-name")).to_contain_text(GBK_EXPORT.name)
    page.get_by_test_id("upload").click()

    progress = page.get_by_test_id("job-progress")
    expect(progress).to_be_visible()
    expect(progress).to_have_attribute("data-status", "done", timeout=60_000)
    expect(page.get_by_test_id("job-status")).to_contain_text("完成")
    expect(page.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    source_rows = csv_rows(GBK_EXPORT.read_bytes(), "gbk")
    summary = page.get_by_test_id("job-summary")
    expect(summary).to_contain_text(f"{len(source_rows) - 1:,}")
    expect(summary).to_contain_text("不符率")

    download_link = page.get_by_test_id("download-result")
    expect(download_link).to_have_attribute("aria-disabled", "false")
    with page.expect_download() as info:
        download_link.click()
    download = info.value
    assert download.suggested_filename.endswith(".scored.csv")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    scored = csv_rows(saved.read_bytes(), "utf-8-sig")
    assert len(scored) == len(source_rows)  # rows in == rows out (header included)
    assert scored[0][: len(source_rows[0])] == source_rows[0]
    assert "tn_label" in scored[0] and "tn_mismatch" in scored[0]

    with context.expect_page() as popup:
        page.get_by_test_id("open-report").click()
    report = popup.value
    report.wait_for_load_state()
    expect(report.locator("body")).to_contain_text(GBK_EXPORT.name)
    expect(report.locator("body")).to_contain_text(f"{len(source_rows) - 1:,}")
    report.close()


def test_upload_an_xlsx_with_named_columns(page, tmp_path):
    from openpyxl import Workbook, load_workbook

    texts = ["收到就发现袖口开线了", "尺码偏大，想换小一码", "快递一周了还没到", "不想要了", "😅😅"] * 8
    book = Workbook()
    sheet = book.active
    sheet.append(["单号", "备注", "原因"])  # headers no export uses: named in the form instead
    for i, text in enumerate(texts):
        sheet.append([f"AS-{i:04d}", text, "七天无理由退货"])
    source = tmp_path / "工单导出.xlsx"
    book.save(source)

    page.get_by_test_id("file").set_input_files(source)
    page.get_by_text("指定列名").click()
    page.get_by_label("描述列").fill("备注")
    page.get_by_label("原因列").fill("原因")
    page.get_by_test_id("upload").click()
    expect(page.get_by_test_id("job-progress")).to_have_attribute("data-status", "done", timeout=60_000)
    expect(page.get_by_test_id("job-summary")).to_contain_text(str(len(texts)))

    with page.expect_download() as info:
        page.get_by_test_id("download-result").click()
    download = info.value
    assert download.suggested_filename.endswith(".xlsx")
    saved = tmp_path / "scored.xlsx"
    download.save_as(saved)
    rows = list(load_workbook(saved, read_only=True).active.iter_rows(values_only=True))
    assert len(rows) == len(texts) + 1
    header = list(rows[0])
    assert header[:3] == ["单号", "备注", "原因"] and "tn_label" in header
    labels = [row[header.index("tn_label")] for row in rows[1:]]
    assert labels[0] == "quality_defect"


def test_upload_errors_show_the_servers_message(page, tmp_path):
    too_big = tmp_path / "too_big.csv"
    too_big.write_text("问题描述,申请原因\n" + "收到就发现袖口开线了,七天无理由退货\n" * 60_000, encoding="utf-8")
    assert too_big.stat().st_size > 2 * 1024 * 1024  # the api_server's upload limit
    page.get_by_test_id("file").set_input_files(too_big)
    page.get_by_test_id("upload").click()
    error = page.get_by_test_id("upload-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("上传上限")
    expect(error).to_contain_text("2,097,152")  # the server's message names the limit
    expect(page.get_by_test_id("download-result")).to_be_hidden()

    notes = tmp_path / "notes.txt"
    notes.write_text("not an export", encoding="utf-8")
    page.get_by_test_id("file").set_input_files(notes)
    page.get_by_test_id("upload").click()
    expect(error).to_contain_text("notes.txt")


# --- 4: a server error is shown, never a blank page -------------------------------------------------------
def test_text_over_the_limit_shows_the_servers_message(page, api_server):
    classify(page, MISMATCH_TEXT, MISMATCH_REASON)
    expect(page.get_by_test_id("label")).to_have_text("质量问题")

    long_text = "收到就发现袖口开线了" * 201  # 2,010 characters
    page.get_by_test_id("text").fill(long_text)
    expect(page.get_by_test_id("counter")).to_have_class("counter over")
    page.get_by_test_id("analyze").click()
    error = page.get_by_test_id("error")
    expect(error).to_be_visible()
    r = httpx.post(f"{api_server.url}/v1/classify", json={"text": long_text}, headers=api_server.headers, timeout=10)
    assert r.status_code == 422
    expect(error).to_contain_text(r.json()["error"]["message"])
    expect(error).to_contain_text("2000")
    expect(page.get_by_test_id("analyze")).to_be_enabled()

    page.get_by_test_id("text").fill(MISMATCH_TEXT)
    page.get_by_test_id("analyze").click()
    expect(error).to_be_hidden()


def test_a_wrong_stored_key_asks_again(context, api_server):
    page, errors = open_console(context, api_server.url, key="not-a-key")
    expect(page.get_by_test_id("key-panel")).to_be_visible()
    expect(page.get_by_test_id("key-panel")).to_contain_text("无效")
    page.get_by_test_id("api-key-input").fill(API_KEY)
    page.get_by_test_id("api-key-input").press("Enter")
    wait_ready(page)
    assert not errors, errors


# --- 5: usable on a phone ----------------------------------------------------------------------------------
def test_no_horizontal_scroll_at_375_px(browser, api_server):
    ctx = browser.new_context(viewport={"width": 375, "height": 812}, locale="zh-CN", is_mobile=True,
                              has_touch=True, device_scale_factor=2)
    try:
        page, errors = open_console(ctx, api_server.url)
        wait_ready(page)
        page.get_by_test_id("example").first.click()
        expect(page.get_by_test_id("mismatch")).to_have_attribute("data-status", "mismatch")
        page.get_by_test_id("file").set_input_files(GBK_EXPORT)
        widths = page.evaluate("""() => ({
            scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth,
            body: document.body.scrollWidth,
            widest: Math.max(...[...document.querySelectorAll('body *')]
                .filter((e) => e.getClientRects().length).map((e) => e.getBoundingClientRect().right)),
        })""")
        assert widths["client"] == 375
        assert widths["scroll"] <= widths["client"], widths
        assert widths["body"] <= widths["client"], widths
        assert widths["widest"] <= widths["client"] + 0.5, widths
        assert not errors, errors
    finally:
        ctx.close()
