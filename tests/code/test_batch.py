"""Batch scoring: every format and encoding, header detection, bad rows, rows in == rows out,
atomic output, resume after a killed run, quiet progress off a terminal."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ticket_nlp.batch import OUTPUT_COLUMNS, ScoreError, open_table, score_file

from ..conftest import ROOT

HEADER = ["退款编号", "买家退款原因", "买家退款说明", "金额"]
ROWS = [
    ["1", "七天无理由退货", "收到就发现袖口开线了", "59.00"],
    ["2", "质量问题", "没什么问题，就是不喜欢这个颜色", "88"],
    ["3", "", "", "10"],                                  # empty
    ["4", "其他", "12345", "1"],                           # not text
    ["5", "尺码不合适", "太大了，换小一码", "120"],
    ["6", "乱写的原因", "快递三天没动了", "30"],            # unknown reason
    ["7", "质量问题", "#N/A", "0"],                         # spreadsheet noise
    ["8", "质量问题", "长" * 3000, "0"],                    # oversize
    ["9", "质量问题", "逗号,引号\"和\n换行都在", "5"],       # quoting
]
STATUS = ["ok", "ok", "empty", "not_text", "ok", "ok", "not_text", "too_long", "ok"]


def write_csv(path: Path, encoding: str, delimiter: str = ",") -> Path:
    with open(path, "w", encoding=encoding, newline="") as f:
        w = csv.writer(f, delimiter=delimiter)
        w.writerow(HEADER)
        w.writerows(ROWS)
    return path


def read_output(path: Path) -> tuple[list[str], list[list[str]]]:
    table = open_table(path)
    return table.header, [[str(c) for c in row] for row in table.rows]


def check_output(path: Path) -> None:
    header, rows = read_output(path)
    assert header[: len(HEADER)] == HEADER and header[-len(OUTPUT_COLUMNS):] == list(OUTPUT_COLUMNS)
    assert len(rows) == len(ROWS)
    assert [r[0] for r in rows] == [r[0] for r in ROWS]  # same order
    assert [r[2] for r in rows[:2]] == [ROWS[0][2], ROWS[1][2]]
    status = header.index("tn_status")
    assert [r[status] for r in rows] == STATUS
    label, mismatch = header.index("tn_label"), header.index("tn_mismatch")
    assert rows[0][label] == "quality_defect" and rows[0][mismatch] == "mismatch"
    assert rows[5][mismatch] == "unknown_reason"
    assert rows[2][label] == ""


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_csv_encodings(clf, tmp_path, encoding):
    src = write_csv(tmp_path / "in.csv", encoding)
    summary = score_file(clf, src, tmp_path / "out.csv", workers=1)
    check_output(tmp_path / "out.csv")
    assert summary.rows == len(ROWS) and summary.statuses["ok"] == STATUS.count("ok")
    assert (tmp_path / "out.csv").read_bytes().startswith(b"\xef\xbb\xbf")  # Excel reads Chinese from a BOM


def test_tsv_and_jsonl(clf, tmp_path):
    src = write_csv(tmp_path / "in.tsv", "utf-8", "\t")
    score_file(clf, src, tmp_path / "out.tsv", workers=1)
    check_output(tmp_path / "out.tsv")
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("".join(json.dumps(dict(zip(HEADER, r, strict=True)), ensure_ascii=False) + "\n" for r in ROWS),
                     encoding="utf-8")
    score_file(clf, jsonl, tmp_path / "out.jsonl", workers=1)
    check_output(tmp_path / "out.jsonl")


def test_xlsx_and_parquet(clf, tmp_path):
    book = openpyxl.Workbook()
    book.active.append(HEADER)
    for r in ROWS:
        book.active.append(r)
    book.save(tmp_path / "in.xlsx")
    score_file(clf, tmp_path / "in.xlsx", tmp_path / "out.xlsx", workers=2, chunk_rows=4)
    check_output(tmp_path / "out.xlsx")
    pq.write_table(pa.table({h: [r[i] for r in ROWS] for i, h in enumerate(HEADER)}), tmp_path / "in.parquet")
    score_file(clf, tmp_path / "in.parquet", tmp_path / "out.parquet", workers=1)
    check_output(tmp_path / "out.parquet")
    score_file(clf, tmp_path / "in.parquet", tmp_path / "cross.csv", workers=1)
    check_output(tmp_path / "cross.csv")


@pytest.mark.parametrize("name", ["tmall_refunds.xlsx", "pdd_aftersales_gbk.csv"])
def test_shipped_samples_rows_in_equal_rows_out(clf, tmp_path, name):
    src = ROOT / "data" / "samples" / name
    n_in = sum(1 for _ in open_table(src).rows)
    out = tmp_path / f"out{src.suffix}"
    summary = score_file(clf, src, out)
    header, rows = read_output(out)
    assert summary.rows == n_in == len(rows)
    assert {"empty", "not_text", "too_long"} <= set(summary.statuses)


def test_header_detection_and_clear_error(clf, tmp_path):
    src = tmp_path / "jd.csv"
    src.write_text("服务单号,客户期望,处理结果\n1,退货,同意\n", encoding="utf-8")
    with pytest.raises(ScoreError, match=r"Headers seen: \['服务单号', '客户期望', '处理结果'\]"):
        score_file(clf, src, tmp_path / "o.csv")
    score_file(clf, src, tmp_path / "o.csv", text_col="处理结果", workers=1)
    assert len(read_output(tmp_path / "o.csv")[1]) == 1


def test_product_column_is_found_or_named(clf, tmp_path):
    """Tmall's 宝贝标题 (or JD's 商品名称) is read for the fit rule; --product-col names any other."""
    src = tmp_path / "tmall.csv"
    src.write_text("退款编号,宝贝标题,买家退款说明,备用名\n1,牛仔裤,太小了,苹果\n2,红富士苹果,太小了,牛仔裤\n3,,太小了,\n",
                   encoding="utf-8")
    expected = [p.label for p in clf.predict(["太小了"] * 3, products=["牛仔裤", "红富士苹果", None])]
    score_file(clf, src, tmp_path / "o.csv", workers=1)
    header, rows = read_output(tmp_path / "o.csv")
    assert [r[header.index("tn_label")] for r in rows] == expected
    assert expected[0] == "size_exchange" and expected[1] != "size_exchange"
    assert [r[header.index("tn_product_family")] for r in rows] == ["wearable", "not_wearable", ""]
    score_file(clf, src, tmp_path / "named.csv", product_col="备用名", workers=1)
    header, rows = read_output(tmp_path / "named.csv")
    assert [r[header.index("tn_label")] for r in rows][:2] == expected[1::-1]
    assert [r[header.index("tn_product_family")] for r in rows] == ["not_wearable", "wearable", ""]


def test_short_and_long_rows_keep_every_cell(clf, tmp_path):
    src = tmp_path / "ragged.csv"
    src.write_text("问题描述,申请原因\n袖口开线,质量问题,多出来的,还有\n太大了\n", encoding="utf-8")
    score_file(clf, src, tmp_path / "o.csv", workers=1)
    header, rows = read_output(tmp_path / "o.csv")
    assert len(rows) == 2
    assert rows[0][header.index("tn_extra_fields")] == "多出来的,还有"
    assert rows[1][header.index("申请原因")] == ""


def test_malformed_file_names_file_and_line(clf, tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_text('{"问题描述": "好"}\n{"问题描述": \n', encoding="utf-8")
    with pytest.raises(ScoreError, match=r"bad.jsonl, line 2"):
        score_file(clf, src, tmp_path / "o.jsonl", workers=1)
    assert not (tmp_path / "o.jsonl").exists()
    utf8 = tmp_path / "mixed.csv"
    utf8.write_bytes("问题描述\n好的\n".encode() + "坏的\n".encode("gbk"))
    with pytest.raises(ScoreError, match="mixed.csv, line 3: not valid utf-8"):
        score_file(clf, utf8, tmp_path / "o.csv", encoding="utf-8", workers=1)
    assert not (tmp_path / "o.csv").exists()


def big_export(path: Path, corpus_rows, n: int) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["编号", "售后原因", "问题描述"])
        for i in range(n):
            r = corpus_rows[i % len(corpus_rows)]
            w.writerow([i, r["claimed_reason"], r["description"]])
    return path


def test_interrupted_run_leaves_no_output_and_resumes(clf, tmp_path, corpus_rows):
    src = big_export(tmp_path / "big.csv", corpus_rows, 2500)
    out = tmp_path / "big.scored.csv"
    with pytest.raises(KeyboardInterrupt):
        score_file(clf, src, out, chunk_rows=500, workers=1, stop_after_chunks=2)
    assert not out.exists()
    score_file(clf, src, out, chunk_rows=500, workers=1, resume=True)
    score_file(clf, src, tmp_path / "full.csv", chunk_rows=500, workers=2)
    assert out.read_bytes() == (tmp_path / "full.csv").read_bytes()
    assert not (tmp_path / "big.scored.csv.progress.json").exists()


def test_killed_process_resumes_and_progress_is_quiet_off_a_tty(model_dir, tmp_path, corpus_rows):
    src = big_export(tmp_path / "kill.csv", corpus_rows, 30000)
    out = tmp_path / "kill.scored.csv"
    env = {**os.environ, "TICKET_NLP_MODEL": str(model_dir)}
    cmd = [sys.executable, "-m", "ticket_nlp.cli", "score", str(src), "-o", str(out), "--chunk-rows", "1000",
           "--workers", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    state = tmp_path / "kill.scored.csv.progress.json"
    deadline = time.time() + 120
    while not state.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert state.exists() and not out.exists()
    done = json.loads(state.read_text())["rows_done"]
    assert 0 < done < 30000
    finished = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert "rows/s" not in finished.stderr and "\r" not in finished.stderr  # no progress bar in logs
    with open(out, encoding="utf-8-sig", newline="") as f:
        ids = [row[0] for row in csv.reader(f)][1:]
    assert ids == [str(i) for i in range(30000)]
