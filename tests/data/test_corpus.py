"""The shipped corpus holds the floors issue #2 sets: schema, label set, size, balance, coverage,
duplicates and split hygiene."""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import pytest

from ticket_nlp.config import LABELS
from ticket_nlp.reasons import ReasonMap
from ticket_nlp.text import to_simplified

from ..conftest import SHARED

COLUMNS = ["ticket_id", "platform", "product_category", "product", "claimed_reason", "description",
           "label", "secondary_labels", "boundary", "split"]
BOUNDARIES = ["fit_vs_defect", "transit_vs_item", "design_vs_fault", "harm_after_use", "wrong_size_sent",
              "subjective_dislike"]


def grams(text: str) -> set[str]:
    t = "".join(text.split())
    return {t} if len(t) < 5 else {t[i:i + 5] for i in range(len(t) - 4)}


def near_duplicate_pairs(texts: list[str], threshold: float = 0.7) -> list[tuple[int, int]]:
    gs = [grams(t) for t in texts]
    index: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(gs):
        for x in g:
            index[x].append(i)
    pairs = []
    for i, g in enumerate(gs):
        for j in {j for x in g for j in index[x] if j < i}:
            if len(g & gs[j]) / len(g | gs[j]) > threshold:
                pairs.append((j, i))
    return pairs


def test_schema(corpus_rows):
    assert list(corpus_rows[0].keys()) == COLUMNS
    for r in corpus_rows:
        assert r["description"].strip(), r["ticket_id"]
        assert r["label"] in LABELS, r
        secondary = [s for s in r["secondary_labels"].split(",") if s]
        assert all(s in LABELS and s != r["label"] for s in secondary), r
        assert r["split"] in {"train", "valid", "test"}
    assert len({r["ticket_id"] for r in corpus_rows}) == len(corpus_rows)


def test_label_set_is_labeling_md():
    labeling = (SHARED / "LABELING.md").read_text(encoding="utf-8")
    table = re.search(r"## The five labels\n(.*?)\n\n", labeling, re.S).group(1)
    assert set(re.findall(r"^\| `(\w+)` \|", table, re.M)) == set(LABELS)


def test_size_and_balance(corpus_rows):
    assert len(corpus_rows) >= 8000
    counts = Counter(r["label"] for r in corpus_rows)
    assert min(counts[lab] for lab in LABELS) >= 1000, counts


def test_other_covers_its_topics(corpus_rows):
    other = [r["description"] for r in corpus_rows if r["label"] == "other"]
    topics = {"price": r"降价|贵|价保|差价|优惠", "gifts": r"赠品|小样|送的", "invoice": r"发票",
              "service": r"客服", "questions": r"[?？吗]", "rants": r"^(垃圾|差评?|差差差|不好|无语)"}
    for topic, pattern in topics.items():
        assert sum(bool(re.search(pattern, t)) for t in other) >= 30, topic


# The plain words (space-separated) LABELING.md and the platform menus use for each label: what buyers type most, so
# each must be common in rows of its own label (a corpus of only creative paraphrase taught the model
# that 瑕疵 means nothing and 质量问题 means "no fault").
PLAIN_WORDS = {
    "quality_defect": "死机 黑屏 开不了机 漏电 开线 掉色 起球 做工 质量差 瑕疵 假货 烂了 坏了 过期 不新鲜 发错 少发 漏发 "
                      "缺配件 色差 破损 异味",
    "size_exchange": "偏大 偏小 不合身 穿不上 换小 换大 尺码 码数",
    "logistics": "物流 快递 没收到 压坏 摔坏 签收 丢",
    "no_reason_return": "不喜欢 不想要 想象 买错 拍错 买多 用不上 不适合 效果一般",
    "other": "降价 太贵 赠品 发票 客服 差差差 垃圾",
}
NEGATED_QUALITY = re.compile(r"(没有|没|不是|不算|并非|无)[^，。,！!？?]{0,3}质量问题")


@pytest.mark.parametrize("label", list(PLAIN_WORDS))
def test_plain_words_are_common_in_their_label(corpus_rows, label):
    texts = [r["description"] for r in corpus_rows if r["label"] == label]
    rare = {w: n for w in PLAIN_WORDS[label].split() if (n := sum(w in t for t in texts)) < 10}
    assert not rare, f"{label}: plain words in fewer than 10 rows: {rare}"


def test_quality_problem_said_plainly_means_quality(corpus_rows):
    """质量问题 not negated (有质量问题, 质量问题退货) is a quality complaint in most rows."""
    labels = Counter(r["label"] for r in corpus_rows
                     if "质量问题" in r["description"] and not NEGATED_QUALITY.search(r["description"]))
    assert labels["quality_defect"] >= 20 and labels["quality_defect"] >= 0.8 * sum(labels.values()), labels


def test_no_exact_and_few_near_duplicates(corpus_rows):
    texts = [r["description"] for r in corpus_rows]
    assert len(set(texts)) == len(texts)
    pairs = near_duplicate_pairs(texts)
    involved = {i for pair in pairs for i in pair}
    assert len(involved) / len(texts) <= 0.02, f"{len(involved)} rows in near-duplicate pairs"


def test_near_duplicates_never_straddle_splits(corpus_rows):
    texts = [r["description"] for r in corpus_rows]
    for i, j in near_duplicate_pairs(texts):
        assert corpus_rows[i]["split"] == corpus_rows[j]["split"], (texts[i], texts[j])


def test_split_proportions(corpus_rows):
    share = Counter(r["split"] for r in corpus_rows)
    n = len(corpus_rows)
    assert share["train"] / n == pytest.approx(0.70, abs=0.02)
    assert share["valid"] / n == pytest.approx(0.15, abs=0.02)
    assert share["test"] / n == pytest.approx(0.15, abs=0.02)
    for lab in LABELS:
        assert Counter(r["split"] for r in corpus_rows if r["label"] == lab)["test"] >= 100


def test_categories(corpus_rows):
    categories = Counter(r["product_category"] for r in corpus_rows)
    assert len(categories) >= 40
    for must in ("女装", "鞋靴", "手机", "大家电", "生鲜水果", "美妆护肤", "图书", "家具", "玩具", "母婴用品"):
        assert categories[must] >= 20, must


def test_lengths(corpus_rows):
    lengths = [len(r["description"]) for r in corpus_rows]
    assert min(lengths) <= 3 and max(lengths) >= 200
    assert sum(n < 8 for n in lengths) / len(lengths) >= 0.10
    assert sum(n >= 200 for n in lengths) >= 20


def test_traditional_characters(corpus_rows):
    traditional = [r for r in corpus_rows if to_simplified(r["description"]) != r["description"]]
    assert len(traditional) / len(corpus_rows) >= 0.03


@pytest.mark.parametrize("name,pattern,floor", [
    ("masked order numbers", r"\d{2,}\*{3,}\d+|[A-Z]{2}\d*\*{3,}\d+", 20),
    ("masked phone numbers", r"1[3-9]\d\*{4}\d{4}", 15),
    ("emoji", "[\U0001f300-\U0001faff]", 60),
    ("latin letters (pinyin, English)", r"[A-Za-z]{2,}", 150),
    ("colloquial forms", r"咋|木有|肿么|坑爹|醉了|无语|亲|啥", 150),
    ("negation before a contrast", r"(没有|没|不是|并没有|无).{0,12}[，,]\s*(就是|但是|但|只是|可是)", 60),
])
def test_style_coverage(corpus_rows, name, pattern, floor):
    hits = sum(bool(re.search(pattern, r["description"])) for r in corpus_rows)
    assert hits >= floor, f"{name}: {hits}"


def test_secondary_labels(corpus_rows):
    assert sum(bool(r["secondary_labels"]) for r in corpus_rows) >= 400


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_boundaries(corpus_rows, boundary):
    rows = [r for r in corpus_rows if r["boundary"] == boundary]
    assert len(rows) >= 60
    assert len({r["label"] for r in rows}) >= 2 or boundary == "wrong_size_sent", "a boundary needs both sides"


def test_wrong_size_sent_follows_labeling(corpus_rows):
    rows = [r for r in corpus_rows if r["boundary"] == "wrong_size_sent" and r["label"] == "quality_defect"]
    assert rows and all("size_exchange" in r["secondary_labels"] for r in rows)


def test_claimed_reasons(corpus_rows):
    reasons = ReasonMap.load()
    claims = Counter(r["claimed_reason"] for r in corpus_rows)
    assert len(claims) >= 40
    assert all(reasons.lookup(c) is not None for c in claims), [c for c in claims if reasons.lookup(c) is None]
    assert len({r["platform"] for r in corpus_rows}) == 5
    contradicted = [r for r in corpus_rows if r["label"] != "other"
                    and "other" not in reasons.lookup(r["claimed_reason"])
                    and r["label"] not in reasons.lookup(r["claimed_reason"])]
    assert 0.15 <= len(contradicted) / len(corpus_rows) <= 0.25
    kinds = Counter((r["label"], reasons.lookup(r["claimed_reason"])[0]) for r in contradicted)
    assert kinds[("quality_defect", "no_reason_return")] >= 100  # defect claimed as 七天无理由
    assert kinds[("no_reason_return", "quality_defect")] >= 100  # dislike claimed as 质量问题
    assert kinds[("size_exchange", "quality_defect")] >= 50  # 我要换小一码 claimed as 质量问题
    assert claims["其他"] >= 200
