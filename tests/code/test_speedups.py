"""The C extension of the hot loops gives exactly what the Python it was ported from gives.

Each function is compared with its Python twin on the whole corpus plus edge cases, then the
whole model end to end (predictions and batch cells) with the extension switched off and on.
"""

from __future__ import annotations

import os
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest

from ticket_nlp import speedups
from ticket_nlp.features import NEGATED_MARK, _hashed_ngrams, tokens_to_text
from ticket_nlp.inference import CompiledPipeline, word_ngrams
from ticket_nlp.text import NEGATION_SCOPE, NEGATORS, NOT_PREFIX, SCOPE_BREAKERS, is_punct, mark_negation

EDGE_TEXTS = ["", " ", "没有破损，就是不喜欢", "不 不 不 不", "，。！？", "\0袖口\0开线", "ＡＢＣ衣服開線了😡",
              "没有\t质量问题 但是 尺码偏大", "a", "𠀀𠀁 罕见字", "NOT_假的", "没" * 50]


@pytest.fixture()
def native():
    if speedups.native is None:
        pytest.fail("the C extension ticket_nlp._speedups is not built (pip install -e . builds it; "
                    "set TICKET_NLP_PURE_PYTHON=1 to run without it)")
    return speedups.native


@pytest.fixture()
def texts(corpus_rows) -> list[str]:
    return [r["description"] for r in corpus_rows] + EDGE_TEXTS


@pytest.mark.skipif(bool(os.environ.get("TICKET_NLP_PURE_PYTHON")), reason="running without the extension on purpose")
def test_extension_is_built():
    """CI and the benchmarks run the extension: a silent fallback would hide a failed build."""
    assert speedups.native is not None


def test_mark_negation_matches_python(native, clf, texts):
    cut = clf._compiled.segmenter._cutter()
    for text in texts:
        words = cut(text)
        expected = mark_negation([w for w in words if not w.isspace()])
        assert native.mark_negation(words, NEGATORS, SCOPE_BREAKERS, NEGATION_SCOPE, NOT_PREFIX) == expected, text
    assert not any(is_punct(t) for t in native.mark_negation(["，", "好"], NEGATORS, SCOPE_BREAKERS, 3, NOT_PREFIX))


def test_punctuation_class_matches_python_on_every_character(native):
    """The C copy of text.PUNCT_RE's class drops exactly the characters Python drops."""
    for code in [*range(0xD800), *range(0xE000, 0x10000), 0x1F621, 0x20000]:
        ch = chr(code)
        dropped = native.mark_negation([ch], NEGATORS, SCOPE_BREAKERS, NEGATION_SCOPE, NOT_PREFIX) == []
        assert dropped == (ch.isspace() or is_punct(ch)), hex(code)


def test_word_ngram_counts_match_python(native, clf, texts):
    compiled = clf._compiled
    vocabulary = compiled.word_vocabulary
    table = native.word_table(vocabulary)
    token_lists = [compiled.segmenter.tokens(text) for text in texts]
    for lo, hi in ((1, 1), (1, 2), (1, 3), (2, 3)):
        indptr, cols, data = native.word_ngram_counts(token_lists, lo, hi, table)
        indptr, cols = np.frombuffer(indptr, dtype=np.int64), np.frombuffer(cols, dtype=np.int64)
        for i, tokens in enumerate(token_lists):
            expected = Counter(vocabulary[g] for g in word_ngrams(tokens, lo, hi) if g in vocabulary)
            row = slice(indptr[i], indptr[i + 1])
            assert dict(zip(cols[row].tolist(), np.frombuffer(data)[row].tolist(), strict=True)) == expected
            assert list(cols[row]) == sorted(expected), (texts[i], lo, hi)


def test_char_ngram_counts_match_python(native, clf, texts):
    chars = clf._compiled.chars
    table = native.ngram_table(chars.hashes_.tobytes())
    for lo, hi in ((1, 3), (2, 4)):
        rows, hashes, _, _, _ = _hashed_ngrams(texts, (lo, hi))
        expected = chars._counts(rows, hashes, len(texts))
        indptr, cols, data = native.char_ngram_counts(texts, lo, hi, table)
        assert np.array_equal(np.frombuffer(indptr, dtype=np.int64), expected.indptr)
        assert np.array_equal(np.frombuffer(cols, dtype=np.int64), expected.indices)
        assert np.array_equal(np.frombuffer(data), expected.data)


def test_colliding_hashes_fall_back_to_exact_lookups(native, clf, texts, monkeypatch):
    """Two n-grams with one 64-bit hash could not be told apart: the table refuses to build and
    the model keeps its exact dict lookups."""
    with pytest.raises(ValueError, match="share a hash"):
        native.ngram_table(np.array([7, 9, 7], dtype=np.uint64).tobytes())

    def colliding(vocabulary):
        raise ValueError("word_table: two n-grams share a hash")

    compiled = CompiledPipeline(clf.pipeline)
    monkeypatch.setattr(speedups, "native", SimpleNamespace(**{**vars(native), "word_table": colliding}))
    normalized, _ = compiled.normalize(texts[:500])
    words, chars = compiled.features(normalized)
    assert compiled.word_table is False
    monkeypatch.setattr(speedups, "native", None)
    expected_words, expected_chars = compiled.features(normalized)
    assert (words != expected_words).nnz == 0 and (chars != expected_chars).nnz == 0


def test_join_tokens_matches_python(native, clf, texts):
    token_lists = [clf._compiled.segmenter.tokens(text) for text in texts] + [[], ["NOT_"], ["NOT_好", "不"]]
    for mode, mark in (("mask", NEGATED_MARK), ("keep", None)):
        assert native.join_tokens(token_lists, NOT_PREFIX, mark) == [tokens_to_text(t, mode) for t in token_lists]


def test_top_features_match_python(native, clf, texts, monkeypatch):
    """The C selection of each row's strongest evidence columns equals the NumPy sort, ties included."""
    import scipy.sparse as sp

    from ticket_nlp.model import Classifier

    def both(owner, blocks, best):
        with_c = Classifier._top_features(owner, blocks, best)
        with monkeypatch.context() as m:
            m.setattr(speedups, "native", None)
            without = Classifier._top_features(owner, blocks, best)
        return [(list(c), list(w)) for c, w in with_c], [(list(c), list(w)) for c, w in without]

    for lo in range(0, len(texts), 6000):
        _, _, proba, blocks = clf._score(texts[lo:lo + 6000])
        with_c, without = both(clf, blocks, proba.argmax(axis=1))
        assert with_c == without
    # equal weights in both blocks (the stable sort keeps block then column order), hidden columns,
    # negative pushes, an empty row and more candidates than the ten kept
    push = np.array([[1.0, 1.0, -1.0, 1.0, 2.0] * 3, [0.5] * 15])
    shown = np.array([True, True, True, False, True] * 3)
    words = sp.csr_matrix(np.array([[1.0, 1.0, 1.0, 1.0, 0.5], [0] * 5, [0.3] * 5]))
    chars = sp.csr_matrix(np.array([[1.0] * 10, [0] * 10, [0.2] * 10]))
    owner = SimpleNamespace(_push=push, _shown_columns=lambda: shown)
    with_c, without = both(owner, [words, chars], np.array([0, 0, 1]))
    assert with_c == without
    assert with_c[0][0] == [9, 14, 0, 1, 4, 5, 6, 10, 11] and with_c[1] == ([], []) and len(with_c[2][0]) == 10


def test_fold_punct_matches_translate_on_every_character(native, texts):
    from ticket_nlp.text import _COMPAT_PUNCT

    for code in [*range(0xD800), *range(0xE000, 0x110000, 7), *range(0xFF00, 0xFF60), 0x3000, 0x2026]:
        ch = chr(code)
        assert native.fold_punct(ch) == ch.translate(_COMPAT_PUNCT), hex(code)
    for text in texts + ["…好…", "ＡＢＣ１２３", "\u3000x\U0001f621！", "é！", "！"]:
        folded = native.fold_punct(text)
        assert folded == text.translate(_COMPAT_PUNCT), text
        assert folded.isascii() == text.translate(_COMPAT_PUNCT).isascii()  # same canonical string form


def test_whole_model_is_identical_without_the_extension(native, clf, texts, corpus_rows, monkeypatch):
    """Probabilities, evidence spans, mismatch flags and batch cells, bit for bit."""
    from ticket_nlp.batch import score_chunk

    reasons = [r["claimed_reason"] for r in corpus_rows] + ["七天无理由退货"] * len(EDGE_TEXTS)
    messy = texts + [None, 3.5, "#N/A"]
    messy_reasons = reasons + ["质量问题"] * 3
    with_c = ([p.to_dict() for p in clf.predict(texts, reasons)], clf.predict_proba(texts),
              score_chunk(clf, messy, messy_reasons))
    monkeypatch.setattr(speedups, "native", None)
    without = ([p.to_dict() for p in clf.predict(texts, reasons)], clf.predict_proba(texts),
               score_chunk(clf, messy, messy_reasons))
    assert with_c[0] == without[0]
    assert np.array_equal(with_c[1], without[1])
    assert with_c[2] == without[2]
    assert sum(p["mismatch"]["status"] == "mismatch" for p in with_c[0]) > 100  # the comparison covers flags


def test_label_rows_are_the_fields_of_predict(clf, texts, corpus_rows):
    """Batch cells come from the same decisions as ``predict``."""
    reasons = [r["claimed_reason"] for r in corpus_rows[:3000]] + [None] * len(EDGE_TEXTS)
    sample = texts[:3000] + EDGE_TEXTS
    products = [r["product_category"] for r in corpus_rows[:3000]] + [None] * len(EDGE_TEXTS)
    for row, p in zip(clf.label_rows(sample, reasons, products), clf.predict(sample, reasons, products), strict=True):
        m = p.mismatch
        assert row == [p.label, p.confidence, p.needs_review, m.status, m.claimed_label or "", m.severity,
                       p.product_family or "", " ".join(e.term for e in p.evidence)]


def test_feature_names_made_on_demand_match_the_union(clf):
    """Evidence names columns from the branches' vocabularies instead of building all names."""
    from ticket_nlp.model import FUNCTION_CHARS, Classifier, _feature_term

    fresh = Classifier(clf.pipeline, clf.metadata)
    names = clf.pipeline.named_steps["features"].get_feature_names_out()
    assert [fresh._feature_name(i) for i in range(len(names))] == list(names)
    shown = [_feature_term(name)[0] not in ("", *FUNCTION_CHARS) for name in names]
    assert fresh._shown_columns().tolist() == shown
    assert 0 < sum(shown) < len(shown)
    with pytest.raises(IndexError):
        fresh._feature_name(-1)
