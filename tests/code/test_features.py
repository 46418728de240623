"""The fast vectorizers and the compiled inference path compute what scikit-learn computes."""

from __future__ import annotations

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from ticket_nlp.features import CharNgramTfidf
from ticket_nlp.text import normalize_text

DOCS = ["袖口开线了", "快递三天没动", "", "太大了 换小一码", "😡😡 垃圾", "size不对，换M码", "不想要了"]


def test_char_ngrams_equal_scikit_learn():
    ours = CharNgramTfidf(ngram_range=(1, 3)).fit(DOCS)
    reference = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, lowercase=False).fit(DOCS)
    names = list(reference.get_feature_names_out())
    assert sorted(ours.get_feature_names_out()) == names
    order = [list(ours.get_feature_names_out()).index(n) for n in names]
    new = ["开线了太大了", "快递没动 size"]
    assert np.allclose(ours.transform(new).toarray()[:, order], reference.transform(new).toarray())


def test_unseen_and_empty_docs():
    model = CharNgramTfidf().fit(DOCS)
    X = model.transform(["", "𠀀𠀁", "开线"])
    assert X.shape == (3, len(model.get_feature_names_out()))
    assert X[0].nnz == 0 and X[1].nnz == 0 and X[2].nnz > 0


def test_compiled_path_equals_pipeline(clf, corpus_rows):
    texts = [r["description"] for r in corpus_rows[:400]] + ["", None, "😡", "订单号2024****5521", 42]
    compiled = clf.predict_proba(texts)
    reference = clf.pipeline.predict_proba(texts)[:, clf._column_order]
    assert np.allclose(compiled, reference, atol=1e-9)


def test_normalized_text_feeds_both_paths(clf):
    texts = ["衣服質量差，电话138****6632", "  ＡＢＣ  起球 ", None]
    normalized, scripts = clf._compiled.normalize(texts)
    assert normalized == [normalize_text(t) for t in texts]
    assert scripts == ["衣服质量差,电话138****6632", "  abc  起球 ", None]  # before masks and spaces


def test_compiled_isotonic_path_equals_pipeline(corpus_rows):
    from ticket_nlp import Classifier
    from ticket_nlp.model import build_pipeline

    rows = corpus_rows[::4]
    pipeline = build_pipeline({"calibration": "isotonic", "calibration_cv": 3})
    pipeline.fit([r["description"] for r in rows], [r["label"] for r in rows])
    clf = Classifier(pipeline, {})
    assert clf._compiled is not None and clf._compiled.method == "isotonic"
    texts = [r["description"] for r in corpus_rows[1:800:4]] + ["", None]
    assert np.allclose(clf.predict_proba(texts), pipeline.predict_proba(texts)[:, clf._column_order], atol=1e-9)
