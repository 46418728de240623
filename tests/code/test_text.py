from __future__ import annotations

import pickle
import re
import unicodedata

import pytest

from ticket_nlp.config import MIN_CONTENT_CHARS
from ticket_nlp.text import (
    NOT_PREFIX,
    Segmenter,
    TextNormalizer,
    char_alignment,
    has_content,
    mark_negation,
    mask_pii,
    nfkc,
    normalize_text,
    script_form,
    script_forms,
)


def test_normalize_nfkc_script_case():
    assert normalize_text("衣服質量太差，ＳＩＺＥ不對！") == "衣服质量太差,size不对!"


def test_normalize_non_text_is_empty():
    assert normalize_text(None) == "" and normalize_text(3.5) == ""


@pytest.mark.parametrize("raw,token", [
    ("电话13812345678联系我", "PHONE"),
    ("电话138****6632联系我", "PHONE"),
    ("订单号2024****5521还没发", "ORDERNO"),
    ("订单号 240112345678901 没发货", "ORDERNO"),
    ("单号SF14****9920查不到", "ORDERNO"),
    ("看这个 https://t.cn/abc123 链接", "URL"),
])
def test_masking(raw, token):
    masked = mask_pii(raw)
    assert token in masked
    assert not any(ch.isdigit() for ch in masked.replace(token, ""))


def test_masking_leaves_prices_and_sizes():
    assert mask_pii("买了*块钱的，穿38码，等了3天") == "买了*块钱的，穿38码，等了3天"


def test_address_masking_for_logs():
    assert "ADDRESS" in mask_pii("寄到浙江省杭州市西湖区文三路100号", addresses=True)


def test_emoji_rule():
    assert "😡" in normalize_text("太差了😡")
    assert "😡" not in normalize_text("太差了😡", emoji="drop")


def test_negation_marks_words_in_scope():
    tokens = mark_negation(["包装", "没有", "破损", "，", "就是", "不", "喜欢"])
    assert "破损" not in tokens and NOT_PREFIX + "破损" in tokens
    assert NOT_PREFIX + "喜欢" in tokens
    assert "，" not in tokens


def test_negation_scope_ends_at_contrast_word():
    tokens = mark_negation(["没有", "质量问题", "就是", "颜色", "丑"])
    assert tokens == ["没有", "NOT_质量问题", "就是", "颜色", "丑"]


def test_segmenter_uses_user_dictionary():
    seg = Segmenter().fit()
    assert "七天无理由" in seg.tokens("申请七天无理由退货")
    assert "开线" in seg.tokens("袖口开线了")


def test_segmenter_pickles_and_rebuilds_engine():
    seg = Segmenter().fit()
    before = seg.tokens("衣服起球了")
    again = pickle.loads(pickle.dumps(seg))
    assert again.tokens("衣服起球了") == before


def test_unknown_engine_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown segmentation engine"):
        Segmenter(engine="nope").fit().tokens("x")


def test_normalizer_step_keeps_row_count():
    out = TextNormalizer().fit_transform(["好", None, "", 12])
    assert out == ["好", "", "", ""]


def test_char_alignment_maps_back_to_original():
    original = "ＳＩＺＥ太小，衣服質量差"
    aligned, index = char_alignment(original)
    start = aligned.find("质量")
    assert original[index[start]: index[start + 1] + 1] == "質量"


def test_rjieba_agrees_with_jieba_on_corpus(corpus_rows):
    """The fast engine must segment like the reference on at least 98% of corpus texts."""
    fast, reference = Segmenter(engine="rjieba").fit(), Segmenter(engine="jieba").fit()
    texts = [normalize_text(r["description"]) for r in corpus_rows]
    same = sum(fast.tokens(t) == reference.tokens(t) for t in texts)
    assert same / len(texts) >= 0.98, f"{same}/{len(texts)}"


TRICKY = ["", "ＡＢＣ，！？", "Ａ\u0301", "，\u0301", "…\u0308", "　 ｶﾞ", "①②", "ﬁ", "袖口開線了…～", "a\x1eb", "\x1e",
          "㎏ ℃ ㈱", "é", "e\u0301", "Ｅ\u0301ｘ"]


def test_nfkc_equals_unicodedata(corpus_rows):
    """The full-width shortcut gives exactly unicodedata's NFKC, also where a combining mark follows."""
    for text in [r["description"] for r in corpus_rows] + TRICKY:
        assert nfkc(text) == unicodedata.normalize("NFKC", text), text


def test_script_forms_equal_script_form_one_by_one(corpus_rows):
    texts = [r["description"] for r in corpus_rows[:5000]] + TRICKY
    assert script_forms(texts) == [script_form(t) for t in texts]
    assert script_forms(["abc", "DEF"]) == ["abc", "def"]
    assert script_forms([]) == []


def test_has_content_equals_counting(corpus_rows):
    """The early-stopping check agrees with counting every content character."""

    def content_chars(text: str) -> int:
        return len(re.sub(r"[\W_]+", "", text))

    texts = [normalize_text(r["description"]) for r in corpus_rows] + TRICKY + [
        "", "好", "，好", "好，", "好，，，，坏", "_a_", "😡😡", "??a", "a1", "___", " 1 ", "差" + "！" * 500]
    assert any(not has_content(t) for t in texts) and any(has_content(t) for t in texts)
    for text in texts:
        assert has_content(text) == (content_chars(text) >= MIN_CONTENT_CHARS), text
