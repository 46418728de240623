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
