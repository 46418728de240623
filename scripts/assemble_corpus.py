"""Assemble data/tickets.csv from the hand-written shards in data/shards/.

This script writes no description: every description was typed by a writer into a shard (see
data/README.md). It only adds what an export would carry around the buyer's words, with a fixed
seed so the result is reproducible:
- ticket_id and platform;
- claimed_reason, a menu string of that platform (every string is in the reasons mapping): about
  three in four agree with the text; the rest contradict it in the ways LABELING.md gives as
  examples (defect text claimed as 七天无理由, dislike claimed as 质量问题, fit claimed as 质量问题 …);
  texts labelled `other` carry 其他 or an arbitrary claim, which they cannot contradict;
- split: 70/15/15 train/valid/test per label, by groups of near-duplicates (char 5-gram Jaccard
  > 0.7), so near-duplicates never straddle splits.

Run: python scripts/assemble_corpus.py   (rewrites data/tickets.csv)
"""

from __future__ import annotations

import csv
import glob
import hashlib
import random
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARDS = ROOT / "data" / "shards"
OUT = ROOT / "data" / "tickets.csv"
FIELDS = ["ticket_id", "platform", "product_category", "product", "claimed_reason", "description",
          "label", "secondary_labels", "boundary", "split"]
SEED = 20261128

WEARABLE = {"女装", "男装", "童装", "内衣袜子", "鞋靴", "运动服饰", "配饰首饰", "手表眼镜"}
FOOD = {"生鲜水果", "肉禽水产", "蔬菜蛋品", "乳制品", "休闲零食", "酒水饮料", "粮油调味", "保健品", "奶粉辅食", "茶叶冲饮"}
SKIN = {"美妆护肤", "洗发护发", "个人清洁"}

# Platform menus (../shared/REASONS.md, LABELING.md), by the label each string claims.
MENUS: dict[str, dict[str, list[str]]] = {
    "tmall": {
        "no_reason_return": ["七天无理由退换货", "七天无理由退换货", "不喜欢/不想要"],
        "size_exchange": ["大小/尺寸与商品描述不符", "尺码拍错", "换货-换尺码", "换货-换颜色"],
        "quality_defect": ["质量问题", "做工粗糙/有瑕疵", "卖家发错货", "少件/漏发", "收到商品时有破损/污渍/变形",
                           "假冒品牌", "颜色/图案/款式与商品描述不符"],
        "logistics": ["快递/物流一直未送到", "快递/物流无跟踪记录", "未按约定时间发货", "货物破损已拒签", "空包裹"],
        "other": ["其他", "其他", "发票问题", "退运费"],
    },
    "jd": {
        "no_reason_return": ["七天无理由退货", "不想要了", "买多了"],
        "size_exchange": ["尺码不合适", "换货-换尺码", "换货-换颜色"],
        "quality_defect": ["质量问题", "商品破损/有污渍", "商品过期/变质", "材质与描述不符", "颜色/款式与描述不符", "假冒品牌"],
        "logistics": ["快递一直未送达", "物流停滞", "快递破损", "包裹丢失"],
        "other": ["其他", "价格保护/降价补差", "发票问题", "赠品未收到"],
    },
    "pinduoduo": {
        "no_reason_return": ["不想要了", "拍错/多拍/不想要", "七天无理由退货"],
        "size_exchange": ["尺码不合适", "尺码拍错"],
        "quality_defect": ["质量问题", "商品破损/有污渍", "少件/漏发", "卖家发错货", "假冒品牌", "退货退款-质量问题"],
        "logistics": ["快递一直未送达", "未按约定时间发货", "空包裹", "物流停滞"],
        "other": ["其他", "价格保护/降价补差"],
    },
    "douyin": {
        "no_reason_return": ["不喜欢/效果不好"],
        "size_exchange": ["大小/尺寸/重量与商品描述不符"],
        "quality_defect": ["功能故障", "商品材质/品牌/外观等描述不符", "生产日期/保质期/规格等描述不符",
                           "品种/规格/成分等描述不符", "少件/漏发", "商家发错货", "做工粗糙/有瑕疵/有污渍"],
        "logistics": ["快递一直未送达", "物流停滞"],
        "other": ["其他"],
    },
    "wechat": {
        "no_reason_return": ["不想要了", "拍错/多拍", "7天无理由", "肤质不匹配"],
        "size_exchange": ["大小/尺寸与商品描述不符"],
        "quality_defect": ["质量问题", "卖家发错货", "少件/漏发", "假冒产品", "开线/走丝", "功能/效果与商品描述不符",
                           "材质/面料与商品描述不符", "颜色/图案/款式与商品描述不符", "宠物食用不适"],
        "logistics": ["未收到商品", "快递长时间未送达", "物流无跟踪记录", "商家未按约定时间发货", "包裹为空", "已拒签包裹"],
        "other": ["其他", "没用/少用优惠", "双方协商一致退款"],
    },
}
PLATFORM_WEIGHTS = {"tmall": 30, "jd": 25, "pinduoduo": 25, "douyin": 12, "wechat": 8}
# Labels a claim may carry when the buyer's words say otherwise (the contradictions LABELING.md names).
CONTRADICTIONS = {
    "quality_defect": [("no_reason_return", 6), ("size_exchange", 2), ("logistics", 2)],
    "no_reason_return": [("quality_defect", 7), ("size_exchange", 1.5), ("logistics", 1.5)],
    "size_exchange": [("quality_defect", 6), ("no_reason_return", 4)],
    "logistics": [("quality_defect", 5), ("no_reason_return", 5)],
}
CONTRADICT_RATE = 0.25  # of non-`other` rows, so about a fifth of the corpus
OTHER_CLAIM_RATE = 0.05  # non-`other` rows whose buyer picked 其他
# Strings that only fit some goods.
ONLY_FOR = {"宠物食用不适": {"宠物用品"}, "肤质不匹配": SKIN, "开线/走丝": WEARABLE | {"箱包", "家纺床品"},
            "商品过期/变质": FOOD, "生产日期/保质期/规格等描述不符": FOOD | SKIN,
            "品种/规格/成分等描述不符": FOOD | SKIN | {"宠物用品"}, "尺码不合适": WEARABLE, "尺码拍错": WEARABLE,
            "换货-换尺码": WEARABLE}


def grams(text: str) -> set[str]:
    t = "".join(text.split())
    return {t} if len(t) < 5 else {t[i:i + 5] for i in range(len(t) - 4)}


def near_duplicate_groups(texts: list[str], threshold: float = 0.7) -> list[int]:
    """Union-find over pairs with char 5-gram Jaccard above the threshold; returns a group per row."""
    parent = list(range(len(texts)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    gs = [grams(t) for t in texts]
    index: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(gs):
        for x in g:
            index[x].append(i)
    for i, g in enumerate(gs):
        cands = {j for x in g for j in index[x] if j < i}
        for j in cands:
            if len(g & gs[j]) / len(g | gs[j]) > threshold:
                parent[find(i)] = find(j)
    return [find(i) for i in range(len(texts))]


def menu(platform: str, label: str, category: str) -> list[str]:
    return [r for r in MENUS[platform][label] if category in ONLY_FOR.get(r, {category})] or MENUS["jd"][label]


def claim_for(rng: random.Random, platform: str, row: dict[str, str]) -> str:
    label, category = row["label"], row["product_category"]
    if label == "other":
        if rng.random() < 0.6:
            return rng.choice(menu(platform, "other", category))
        # a vague or off-topic text with a concrete claim: supports nothing, contradicts nothing
        return rng.choice(menu(platform, rng.choice(["quality_defect", "no_reason_return", "logistics"]), category))
    roll = rng.random()
    if roll < OTHER_CLAIM_RATE:
        return "其他"
    if roll < OTHER_CLAIM_RATE + CONTRADICT_RATE:
        labels, weights = zip(*CONTRADICTIONS[label], strict=True)
        wrong = rng.choices(labels, weights)[0]
        return rng.choice(menu(platform, wrong, category))
    return rng.choice(menu(platform, label, category))


def main() -> None:
    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    dropped = 0
    for path in sorted(glob.glob(str(SHARDS / "*.csv"))):
        with open(path, encoding="utf-8", newline="") as f:
            for r in csv.DictReader(f):
                desc = r["description"]
                if desc in seen:
                    dropped += 1
                    continue
                seen.add(desc)
                r["secondary_labels"] = ",".join(s for s in r["secondary_labels"].replace(",", ";").split(";") if s)
                rows.append(r)
    rng = random.Random(SEED)
    platforms, weights = zip(*PLATFORM_WEIGHTS.items(), strict=True)
    for r in rows:
        r["ticket_id"] = "T" + hashlib.sha1(r["description"].encode()).hexdigest()[:10].upper()
        r["platform"] = rng.choices(platforms, weights)[0]
        r["claimed_reason"] = claim_for(rng, r["platform"], r)
    groups = near_duplicate_groups([r["description"] for r in rows])
    by_label: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, g in enumerate(groups):
        by_label[rows[g]["label"]][g].append(i)
    for members in by_label.values():
        order = list(members)
        rng.shuffle(order)
        total = sum(len(m) for m in members.values())
        done = 0
        for g in order:
            split = "train" if done < 0.70 * total else "valid" if done < 0.85 * total else "test"
            for i in members[g]:
                rows[i]["split"] = split
            done += len(members[g])
    with open(OUT.with_suffix(".tmp"), "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    OUT.with_suffix(".tmp").replace(OUT)
    print(f"{len(rows)} rows ({dropped} exact duplicates dropped) -> {OUT}")
    print("labels:", dict(Counter(r["label"] for r in rows)))
    print("splits:", dict(Counter(r["split"] for r in rows)))


if __name__ == "__main__":
    main()
