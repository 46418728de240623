from __future__ import annotations

import pytest

from ticket_nlp.config import LABELS
from ticket_nlp.products import ProductFamilies, family_factors


@pytest.fixture(scope="module")
def families() -> ProductFamilies:
    return ProductFamilies.load()


@pytest.mark.parametrize("product,family", [
    ("女装", "wearable"),
    ("韩版宽松加绒卫衣女", "wearable"),             # a title, not a category
    ("李宁运动鞋", "wearable"),
    ("運動鞋", "wearable"),                         # traditional script
    ("生鲜水果", "not_wearable"),
    ("烟台红富士苹果 5斤装", "not_wearable"),
    ("ＩＰＨＯＮＥ 15", "not_wearable"),             # full width and case
    ("洗衣机", "not_wearable"),                     # 洗衣机 (3) beats 衣 (1)
    ("灯笼裤", None),                               # 灯 and 裤 at the same length: ambiguous
    ("宝贝", None),                                 # names nothing
    ("", None),
    (None, None),
    (12345, None),
])
def test_family(families, product, family):
    assert families.family(product) == family


def test_every_corpus_category_is_read_as_the_corpus_means_it(families, corpus_rows):
    """Clothing, shoes and accessories are wearable; food, electronics, books, home goods are not;
    the corpus's in-between categories (bags, baby goods, outdoor gear, smart wearables) stay unknown."""
    unknown = {"箱包", "母婴用品", "运动户外", "智能穿戴"}
    for category in {r["product_category"] for r in corpus_rows}:
        if category in unknown:
            assert families.family(category) is None, category
        else:
            assert families.family(category) is not None, category


def test_family_factors_are_bayes_ratios():
    labels = ["size_exchange"] * 300 + ["quality_defect"] * 300 + ["quality_defect"] * 400
    families = ["wearable"] * 600 + ["not_wearable"] * 400
    factors = family_factors(labels, families, min_rows=100)
    # P(size | wearable) / P(size) = (300+1)/(600+5) / 0.3, add-one smoothed
    assert factors["wearable"]["size_exchange"] == pytest.approx(301 / 605 / 0.3, abs=1e-4)
    assert factors["not_wearable"]["size_exchange"] < 0.02       # never seen there: nearly ruled out
    assert factors["not_wearable"]["quality_defect"] > 1
    assert set(factors["wearable"]) == {"size_exchange", "quality_defect"}  # labels absent overall: no factor
    assert set(LABELS) >= set(factors["wearable"])


def test_family_with_too_few_rows_gets_no_factor():
    factors = family_factors(["size_exchange"] * 50 + ["other"] * 500, ["wearable"] * 50 + [None] * 500, min_rows=100)
    assert factors == {}


def test_a_broken_file_is_refused(tmp_path):
    bad = tmp_path / "families.yaml"
    bad.write_text("families: 衣服\n", encoding="utf-8")
    with pytest.raises(ValueError, match="families"):
        ProductFamilies.load(bad)
