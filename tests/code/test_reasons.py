from __future__ import annotations

import pytest

from ticket_nlp.reasons import ReasonMap


@pytest.fixture(scope="module")
def reasons() -> ReasonMap:
    return ReasonMap.load()


def test_covers_forty_menu_strings(reasons):
    assert len(reasons) >= 40


@pytest.mark.parametrize("claimed,labels", [
    ("七天无理由退换货", ("no_reason_return",)),
    ("质量问题", ("quality_defect",)),
    ("退货退款-质量问题", ("quality_defect",)),   # refund-type prefix
    ("换货-换尺码", ("size_exchange",)),           # a listed string that looks like a prefix
    ("拍错／多拍", ("no_reason_return",)),          # full-width slash
    ("品質問題", None),                             # traditional script of an unlisted wording
    ("質量問題", ("quality_defect",)),             # traditional script
    (" 快递一直未送达 ", ("logistics",)),
    ("大小/尺寸与商品描述不符", ("size_exchange", "quality_defect")),
    ("其他", ("other",)),
    ("我也不知道选什么", None),
    (None, None),
])
def test_lookup(reasons, claimed, labels):
    assert reasons.lookup(claimed) == labels


def test_every_platform_family_is_present(reasons):
    for s in ("不想要了", "不喜欢/效果不好", "7天无理由", "未收到商品", "功能故障", "价格保护/降价补差"):
        assert reasons.lookup(s), s


def test_ops_can_add_wording_without_code(tmp_path):
    path = tmp_path / "reasons.yaml"
    path.write_text("reasons:\n  衣服有味道: quality_defect\n  随便: [other]\n", encoding="utf-8")
    custom = ReasonMap.load(path)
    assert custom.lookup("衣服有味道") == ("quality_defect",)
    assert custom.lookup("质量问题") is None


def test_bad_label_in_yaml_is_a_clear_error(tmp_path):
    path = tmp_path / "reasons.yaml"
    path.write_text("reasons:\n  质量问题: broken\n", encoding="utf-8")
    with pytest.raises(ValueError, match="质量问题"):
        ReasonMap.load(path)


def test_claim_posterior_weighs_the_claim_as_evidence():
    from ticket_nlp.model import claim_posterior

    # a text that leaves the claimed label a fair chance keeps the claim; one that rules it out does not
    assert claim_posterior(0.30, 1, 0.75) > 0.5
    assert claim_posterior(0.02, 1, 0.75) < 0.5
    # the more buyers pick fitting reasons, the more text it takes to overturn one
    assert claim_posterior(0.05, 1, 0.9) > claim_posterior(0.05, 1, 0.6)
    # a claim accepting two labels shares its dishonest mass among fewer alternatives
    assert claim_posterior(0.05, 2, 0.75) < claim_posterior(0.05, 1, 0.75)
    assert claim_posterior(0.0, 1, 0.75) == 0.0 and claim_posterior(1.0, 1, 0.75) == 1.0


def test_claim_agreement_is_measured_on_claims_that_can_disagree():
    from ticket_nlp.data import LabelledSet
    from ticket_nlp.model import DEFAULT_CLAIM_AGREEMENT
    from ticket_nlp.train import claim_agreement

    reasons = ReasonMap.load()
    labels = ["quality_defect"] * 60 + ["no_reason_return"] * 20 + ["other"] * 30
    claimed = ["质量问题"] * 45 + ["七天无理由退换货"] * 15 + ["不想要了"] * 20 + ["质量问题"] * 30
    data = LabelledSet(texts=["x"] * len(labels), labels=labels, claimed=claimed)
    assert claim_agreement(data, reasons) == round(65 / 80, 4)  # `other` texts neither agree nor disagree
    assert claim_agreement(LabelledSet(texts=["x"], labels=["logistics"], claimed=["物流停滞"]),
                           reasons) == DEFAULT_CLAIM_AGREEMENT
