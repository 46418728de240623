"""Behavioural tests of the trained model (Ribeiro et al.'s CheckList, as Made With ML uses it):
minimum functionality, invariance, direction; plus LABELING.md's mismatch rules and a quality
floor on the test split, which the model never trained on."""

from __future__ import annotations

import pytest

from ticket_nlp.data import load_labelled
from ticket_nlp.evaluate import evaluate

from ..conftest import CORPUS

# Minimum functionality: plain cases of every label and each boundary LABELING.md names.
MFT = [
    # quality_defect
    ("衣服袖口开线了", "quality_defect"),
    ("洗了一次就掉色，把别的衣服都染了", "quality_defect"),
    ("穿了两天就起球", "quality_defect"),
    ("手机用了三天就黑屏开不了机", "quality_defect"),
    ("平板老是死机重启", "quality_defect"),
    ("收到的苹果烂了一半", "quality_defect"),
    ("牛奶过期了", "quality_defect"),
    ("这洗发水是假货，跟专柜的味道完全不一样", "quality_defect"),
    ("鞋底开胶了", "quality_defect"),
    ("书缺了好几页", "quality_defect"),
    ("热水器漏电，吓死人", "quality_defect"),
    ("少发了一个配件", "quality_defect"),
    ("发错货了，我买的蓝色发来黑色", "quality_defect"),
    ("做工太差了线头到处都是", "quality_defect"),
    # size_exchange
    ("太大了", "size_exchange"),
    ("鞋子偏小一码，挤脚", "size_exchange"),
    ("裤子太长了想换短一点的", "size_exchange"),
    ("按尺码表买的还是穿不上", "size_exchange"),
    ("我要换小一码", "size_exchange"),
    ("能换个颜色吗，想要黑色的", "size_exchange"),
    ("衣服不合身，肩膀太窄", "size_exchange"),
    ("孩子穿着小了，换大一号", "size_exchange"),
    # logistics
    ("快递一直没送到", "logistics"),
    ("物流三天没更新了", "logistics"),
    ("没收到货", "logistics"),
    ("付款一周了还不发货", "logistics"),
    ("快递员不送上门，直接放驿站", "logistics"),
    ("包裹显示签收了但我根本没收到", "logistics"),
    ("快递太慢了，等了十天", "logistics"),
    # no_reason_return
    ("不想要了", "no_reason_return"),
    ("拍错了，想退", "no_reason_return"),
    ("买多了一件", "no_reason_return"),
    ("颜色不喜欢", "no_reason_return"),
    ("和想象的不一样，不太喜欢", "no_reason_return"),
    ("家里人不喜欢这个款式", "no_reason_return"),
    ("用不上了，退了吧", "no_reason_return"),
    # other
    ("买完第二天就降价了，补差价", "other"),
    ("赠品没有收到", "other"),
    ("发票什么时候开", "other"),
    ("客服态度太差了，爱理不理", "other"),
    ("垃圾", "other"),
    ("差评", "other"),
    # boundaries
    ("尺码不标准，平时穿M这个M穿不上", "size_exchange"),             # fit vs defect: chart wrong is still fit
    ("尺码正好，但是穿了一次裤裆就开线了", "quality_defect"),         # fit vs defect: defect
    ("快递把箱子压扁了，里面的杯子碎了", "logistics"),               # transit vs item: transit
    ("打开盒子杯子就是裂的", "quality_defect"),                      # transit vs item: item
    ("用了两天就开不了机", "quality_defect"),                        # design vs fault: fault
    ("太重了，拿着不方便", "no_reason_return"),                      # design vs fault: design
    ("用了这个洗发水就开始掉头发，肯定是假货", "quality_defect"),      # harm after use: blamed
    ("不适合我的发质，洗完有点干", "no_reason_return"),              # harm after use: does not suit
    ("我拍的M码，发来的是XL", "quality_defect"),                     # wrong size sent
    ("我自己拍的L码，穿着大", "size_exchange"),                      # size ordered does not fit
    ("没有质量问题，就是不喜欢", "no_reason_return"),                 # negation
    ("包装完好但是衣服有破洞", "quality_defect"),                    # negation
    ("水果个头太小了，和图片差太多", "quality_defect"),               # size of a non-wearable
]


@pytest.mark.parametrize("text,label", MFT)
def test_minimum_functionality(clf, text, label):
    assert clf.predict([text])[0].label == label


def test_minimum_functionality_size():
    assert len(MFT) >= 50


@pytest.mark.parametrize("a,b", [
    ("衣服质量太差了，袖口都开线了", "衣服質量太差了，袖口都開線了"),   # script
    ("快递三天没动了,客服也不理", "快递三天没动了，客服也不理"),       # full-width punctuation
    ("鞋子偏小一码", "鞋子偏小一码😭"),                               # emoji
    ("订单号2024****5521一直没发货", "订单号240112345678901一直没发货"),  # masked vs plain numbers
    ("电话13812345678，快递一直没送到", "电话138****6632，快递一直没送到"),
])
def test_invariance(clf, a, b):
    pa, pb = clf.predict([a, b])
    assert pa.label == pb.label
    assert abs(pa.confidence - pb.confidence) < 0.1


@pytest.mark.parametrize("text", ["衣服收到了，没什么问题", "东西收到了", "颜色和图片一样，做工还行"])
def test_direction_dislike_moves_to_no_reason(clf, text):
    before = clf.predict([text])[0].probabilities["no_reason_return"]
    after = clf.predict([text + "，就是不喜欢"])[0]
    assert after.label == "no_reason_return"
    assert after.probabilities["no_reason_return"] > before


def test_direction_negation_removes_defect(clf):
    broken = clf.predict(["包装破损了"])[0].probabilities["quality_defect"] + \
        clf.predict(["包装破损了"])[0].probabilities["logistics"]
    intact = clf.predict(["包装没有破损，就是买多了"])[0]
    assert intact.label == "no_reason_return"
    assert intact.probabilities["quality_defect"] + intact.probabilities["logistics"] < broken


@pytest.mark.parametrize("text", ["太小了", "有点小", "比图片上小了一圈"])
def test_direction_product_decides_the_fit_rule(clf, text):
    """LABELING.md: a wearable that does not fit is size_exchange; a non-wearable smaller than
    listed is not (it is quality_defect, not as described). The product named is the evidence."""
    [none, fruit, jeans] = [clf.predict([text], products=[p])[0] for p in (None, "红富士苹果 5斤", "牛仔裤")]
    assert fruit.probabilities["size_exchange"] < none.probabilities["size_exchange"] \
        < jeans.probabilities["size_exchange"]
    assert fruit.label != "size_exchange"
    assert jeans.label == "size_exchange"
    assert (none.product_family, fruit.product_family, jeans.product_family) == (None, "not_wearable", "wearable")


def test_an_unknown_product_changes_nothing(clf):
    texts = ["太小了", "袖口开线了", "快递一直没到"]
    plain = clf.predict(texts)
    for product in ("宝贝", "", None, "灯笼裤"):  # names nothing, or two families at once
        assert [p.to_dict() for p in clf.predict(texts, products=[product] * 3)] == [p.to_dict() for p in plain]


def test_products_must_match_texts(clf):
    with pytest.raises(ValueError, match="products"):
        clf.predict(["太小了", "太大了"], products=["苹果"])


def test_training_stored_the_product_families_it_measured(clf):
    priors = clf.metadata["product_priors"]
    assert set(priors["factors"]) == {"wearable", "not_wearable"}
    assert priors["factors"]["not_wearable"]["size_exchange"] < 0.1   # fit problems need a wearable
    assert priors["factors"]["wearable"]["size_exchange"] > 1
    assert "衣" in priors["keywords"]["wearable"]


# --- claimed-reason rules (LABELING.md) ---------------------------------------------------------
def test_defect_claimed_as_no_reason_is_flagged_with_evidence(clf):
    p = clf.predict(["收到就发现有瑕疵，袖口开线"], ["七天无理由退货"])[0]
    assert p.mismatch.status == "mismatch"
    assert p.mismatch.claimed_label == "no_reason_return"
    assert p.mismatch.severity == "high"
    terms = "".join(e.term for e in p.mismatch.evidence)
    assert "开线" in terms or "瑕疵" in terms
    text = "收到就发现有瑕疵，袖口开线"
    assert all(text[e.start:e.end] == e.term for e in p.evidence)


def test_dislike_claimed_as_quality_is_flagged(clf):
    p = clf.predict(["没什么问题，就是不太喜欢这个颜色"], ["质量问题"])[0]
    assert p.mismatch.status == "mismatch" and p.label == "no_reason_return"


def test_size_claimed_as_quality_is_flagged(clf):
    p = clf.predict(["我要换小一码"], ["退货退款-质量问题"])[0]
    assert p.mismatch.status == "mismatch" and p.label == "size_exchange"


def test_claim_of_other_is_never_contradicted(clf):
    texts = ["袖口开线", "快递一直没到", "不喜欢", "太大了"]
    assert {p.mismatch.status for p in clf.predict(texts, ["其他"] * 4)} == {"consistent"}


@pytest.mark.parametrize("text", ["不想说", "差", "退货", "?", ""])
def test_vague_text_is_never_flagged(clf, text):
    p = clf.predict([text], ["质量问题"])[0]
    assert p.mismatch.status != "mismatch"


def test_unknown_and_missing_claims(clf):
    unknown, missing = clf.predict(["袖口开线", "袖口开线"], ["随便选的", None])
    assert unknown.mismatch.status == "unknown_reason" and unknown.mismatch.claimed_label is None
    assert missing.mismatch.status == "not_claimed"


def test_multi_label_claim_accepts_either(clf):
    p = clf.predict(["被子比描述的小了一大截"], ["大小/尺寸与商品描述不符"])[0]
    assert p.mismatch.status == "consistent"


def test_product_narrows_a_multi_label_claim(clf):
    """大小/尺寸与商品描述不符 means size_exchange or quality_defect; for fruit only the second can be
    meant, for a shirt both stay, and a text that says the dropped label keeps it (the category may be
    wrong about the item)."""
    text, claim = "苹果比图片上小了一圈", "大小/尺寸与商品描述不符"
    [fruit, unknown, shirt] = clf.predict([text] * 3, [claim] * 3, products=["红富士苹果", None, "衬衫"])
    assert fruit.mismatch.claimed_labels == ["quality_defect"] and fruit.mismatch.claimed_label == "quality_defect"
    assert unknown.mismatch.claimed_labels == ["size_exchange", "quality_defect"]
    assert shirt.mismatch.claimed_labels == ["size_exchange", "quality_defect"]
    tee = clf.predict(["送的T恤码数偏小，孩子穿不上，想换大一码"], [claim], products=["图书"])[0]
    assert tee.label == "size_exchange" and tee.mismatch.status == "consistent"
    assert "size_exchange" in tee.mismatch.claimed_labels
    single = clf.predict(["苹果烂了好几个"], ["尺码不合适"], products=["苹果"])[0]
    assert single.mismatch.claimed_labels == ["size_exchange"]  # a reason with one label is kept as it is


def test_agreeing_claim_is_consistent(clf):
    p = clf.predict(["袖口开线了"], ["质量问题"])[0]
    assert p.mismatch.status == "consistent" and p.mismatch.evidence == []


def test_prediction_contract(clf):
    p = clf.predict(["快递太慢了"])[0]
    d = p.to_dict()
    assert set(d) == {"label", "probabilities", "confidence", "needs_review", "evidence", "mismatch", "product_family"}
    assert abs(sum(d["probabilities"].values()) - 1) < 1e-3
    assert d["confidence"] == max(d["probabilities"].values())
    assert set(d["mismatch"]) >= {"claimed_label", "status", "severity", "evidence"}


# --- quality floor on data the model did not train on --------------------------------------------
TEST_MACRO_F1_FLOOR = 0.85
TEST_MISMATCH_PRECISION_FLOOR = 0.85


def test_quality_floor_on_test_split(clf):
    report = evaluate(clf, load_labelled(CORPUS).split("test"))
    assert report["macro_f1"] >= TEST_MACRO_F1_FLOOR
    assert report["mismatch"]["precision"] >= TEST_MISMATCH_PRECISION_FLOOR
    assert report["mismatch"]["recall"] >= 0.5


def test_a_flag_needs_the_claim_to_be_more_likely_wrong_than_right(clf):
    """Every flag has the text's confidence over the threshold and the claim's posterior below 1/2;
    trusting claims more (a higher agreement prior) can only remove flags, never add them."""
    from ticket_nlp.config import LABELS
    from ticket_nlp.model import claim_posterior

    texts = ["收到就发现有瑕疵，袖口开线", "没什么问题，就是不太喜欢这个颜色", "我要换小一码", "快递一个星期还没到",
             "质量一般吧，也不是不能穿", "有点大，面料也一般", "不喜欢，而且线头很多"] * 3
    claims = ["七天无理由退货"] * 7 + ["质量问题"] * 7 + ["尺码不合适"] * 7
    saved = clf.claim_agreement
    try:
        flagged = {}
        for agreement in (0.5, saved, 0.99):
            clf.claim_agreement = agreement
            preds = clf.predict(texts, claims)
            flagged[agreement] = {i for i, p in enumerate(preds) if p.mismatch.status == "mismatch"}
            for i in flagged[agreement]:
                p = preds[i]
                supported = sum(p.probabilities[lab] for lab in p.mismatch.claimed_labels)
                assert p.confidence >= clf.mismatch_threshold - 1e-4
                assert claim_posterior(supported, len(p.mismatch.claimed_labels), agreement) < 0.5 + 1e-3
                assert set(p.probabilities) == set(LABELS)
        assert flagged[0.99] <= flagged[saved] <= flagged[0.5]
        assert flagged[saved], "the clear contradictions are still flagged"
    finally:
        clf.claim_agreement = saved
