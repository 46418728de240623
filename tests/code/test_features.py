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


def test_pickled_vocabularies_are_packed_and_restored(clf, corpus_rows, tmp_path):
    """The n-gram strings are saved as one string each (fast to load) and come back identical;
    saving leaves the fitted model untouched, and a model saved before packing still loads."""
    import joblib

    from ticket_nlp.features import FastTfidfVectorizer

    branches = dict(clf.pipeline.named_steps["features"].transformer_list)
    words, chars = branches["words"], branches["chars"]
    assert "_packed_vocabulary" in words.__getstate__() and words.__getstate__()["vocabulary_"] is None
    assert "_packed_ngrams" in chars.__getstate__()
    vocabulary, ngrams = dict(words.vocabulary_), list(chars.ngrams_)
    joblib.dump(clf.pipeline, tmp_path / "m.joblib")
    assert words.vocabulary_ == vocabulary and list(chars.ngrams_) == ngrams  # not mutated by saving
    loaded = dict(joblib.load(tmp_path / "m.joblib").named_steps["features"].transformer_list)
    assert loaded["words"].vocabulary_ == vocabulary
    assert list(loaded["chars"].ngrams_) == ngrams and loaded["chars"].ngrams_.dtype == object
    texts = [r["description"] for r in corpus_rows[:500]]
    assert np.array_equal(loaded["chars"].transform(texts).toarray(), chars.transform(texts).toarray())
    old_style = FastTfidfVectorizer()
    old_style.__setstate__({**words.__dict__})  # the state as saved before packing
    assert old_style.vocabulary_ == vocabulary
    odd = FastTfidfVectorizer(analyzer=lambda doc: [tuple(doc)]).fit(["好"])  # not strings: kept as the dict
    assert odd.__getstate__()["vocabulary_"] == odd.vocabulary_
