"""Write the two demo exports in data/samples/ from corpus descriptions (seeded, reproducible).

- tmall_refunds.xlsx: Tmall's refund export (headers from ../shared/REASONS.md), 3,000 rows;
- pdd_aftersales_gbk.csv: a Pinduoduo-style after-sales export as Excel on Chinese Windows saves
  it (GBK, CRLF), 2,500 rows, with a 问题描述 column added by the merchant's ERP.
Both carry the messy rows real exports have: empty and blank descriptions, numbers, emoji-only
text (written as "?" in GBK, as Excel does), embedded newlines, commas and quotes, a text far over
the length limit, and claimed reasons outside the mapping.

Run: python scripts/make_samples.py
"""

from __future__ import annotations

import csv
import random
from datetime import datetime, timedelta
from pathlib import Path

import openpyxl

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "data" / "samples"
SEED = 7

TMALL_HEADERS = ["订单编号", "退款编号", "支付宝交易号", "订单付款时间", "商家编码", "退款完结时间", "买家会员名称",
                 "买家实际支付金额", "宝贝标题", "买家退款金额", "手工退款/系统退款", "是否需要退货", "退款的申请时间",
                 "超时时间", "退款状态", "货物状态", "退货物流信息", "发货物流信息", "客服介入状态", "退货物流单号",
                 "退货物流公司", "买家退款原因", "买家退款说明", "买家退货时间", "责任方", "售中或售后", "商家备注",
                 "完结时间", "部分退款/全部退款", "审核操作人", "举证超时", "退款操作人"]
PDD_HEADERS = ["售后编号", "订单编号", "售后类型", "售后状态", "申请时间", "商品名称", "售后原因", "问题描述",
               "退款金额(元)", "商品id", "skuId", "快递单号", "买家手机", "极速退款标志"]
MESSY = ["", "   ", "12345", "😡😡😡", "。。。", "null", "#N/A", "=SUM(A1:A3)",
         '质量太差了,袖口 "开线" 了\n第二行还有字', "退\t货", "超长：" + "这件衣服真的太差了" * 400]
UNKNOWN_REASONS = ["不知道选啥", "协商退款(旧版)", ""]


def corpus_rows() -> list[dict[str, str]]:
    with open(ROOT / "data" / "tickets.csv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def when(rng: random.Random) -> datetime:
    return datetime(2026, 10, 1) + timedelta(minutes=rng.randrange(60 * 24 * 50))


def describe(rng: random.Random, row: dict[str, str]) -> tuple[str, str]:
    """Description and claimed reason for one export row; about one in twenty is messy."""
    roll = rng.random()
    if roll < 0.03:
        return rng.choice(MESSY), row["claimed_reason"]
    if roll < 0.05:
        return row["description"], rng.choice(UNKNOWN_REASONS)
    return row["description"], row["claimed_reason"]


def tmall(rows: list[dict[str, str]], rng: random.Random, n: int) -> None:
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = "退款列表"
    ws.append(TMALL_HEADERS)
    for i in range(n):
        row = rng.choice(rows)
        text, reason = describe(rng, row)
        paid = when(rng)
        applied = paid + timedelta(days=rng.randint(1, 12))
        price = round(rng.uniform(9.9, 899), 2)
        ws.append([
            f"{rng.randrange(10**17, 10**18)}", f"{rng.randrange(10**14, 10**15)}", f"2026{rng.randrange(10**23, 10**24)}",
            paid.strftime("%Y-%m-%d %H:%M:%S"), f"SKU-{rng.randrange(1000, 9999)}", "",
            f"{rng.choice('tjxlmwz')}**{rng.randrange(10)}", price, f"{row['product']} {row['product_category']}",
            price, rng.choice(["系统退款", "手工退款"]), rng.choice(["是", "否"]),
            applied.strftime("%Y-%m-%d %H:%M:%S"), (applied + timedelta(days=7)).strftime("%Y-%m-%d %H:%M:%S"),
            rng.choice(["退款成功", "买家已经申请退款，等待卖家同意", "卖家拒绝退款", "退款关闭"]),
            rng.choice(["买家已收到货", "买家未收到货", "买家已退货"]), "", "", rng.choice(["无", "客服已介入"]),
            f"YT{rng.randrange(10**11, 10**12)}" if rng.random() < 0.5 else "", rng.choice(["圆通速递", "中通快递", ""]),
            reason, text, "", rng.choice(["卖家", "买家", "物流", ""]), rng.choice(["售后", "售中"]), "", "",
            rng.choice(["全部退款", "部分退款"]), "", "否", "",
        ])
        if i == n // 2:  # a blank line in the middle, as hand-edited exports have
            ws.append([None] * len(TMALL_HEADERS))
    tmp = OUT / "tmall_refunds.xlsx.tmp"
    book.save(tmp)
    tmp.replace(OUT / "tmall_refunds.xlsx")


def pinduoduo(rows: list[dict[str, str]], rng: random.Random, n: int) -> None:
    tmp = OUT / "pdd_aftersales_gbk.csv.tmp"
    with open(tmp, "w", encoding="gbk", errors="replace", newline="") as f:
        w = csv.writer(f, lineterminator="\r\n")
        w.writerow(PDD_HEADERS)
        for _ in range(n):
            row = rng.choice(rows)
            text, reason = describe(rng, row)
            w.writerow([
                f"{rng.randrange(10**13, 10**14)}", f"2611{rng.randrange(10**10, 10**11)}-{rng.randrange(10**14, 10**15)}",
                rng.choice(["仅退款", "退货退款", "换货"]), rng.choice(["待商家处理", "退款成功", "售后关闭"]),
                when(rng).strftime("%Y/%m/%d %H:%M"), row["product"], reason, text,
                f"{rng.uniform(3, 500):.2f}", str(rng.randrange(10**8, 10**9)), str(rng.randrange(10**9, 10**10)),
                f"ZT{rng.randrange(10**11, 10**12)}", f"1{rng.choice('3589')}{rng.randrange(10)}****{rng.randrange(1000, 9999)}",
                rng.choice(["是", "否"]),
            ])
    tmp.replace(OUT / "pdd_aftersales_gbk.csv")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rows = corpus_rows()
    rng = random.Random(SEED)
    tmall(rows, rng, 3000)
    pinduoduo(rows, rng, 2500)
    print(f"wrote {OUT}/tmall_refunds.xlsx and {OUT}/pdd_aftersales_gbk.csv")


if __name__ == "__main__":
    main()
