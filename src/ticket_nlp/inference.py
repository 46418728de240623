"""The fitted Pipeline's arithmetic without scikit-learn's per-call checks.

A single-text ``Pipeline.predict_proba`` spends milliseconds validating inputs in each step; the
API answers one ticket at a time, so ``CompiledPipeline`` reads the fitted steps' parameters
(vocabulary, idf, coefficients, calibrators) and does the same sums with NumPy. The Pipeline stays
the artifact and the reference: tests/model asserts both give the same probabilities.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.special import expit
from sklearn.pipeline import Pipeline

from ticket_nlp import speedups
from ticket_nlp.features import NEGATED_MARK, CharNgramTfidf, FastTfidfVectorizer, _hashed_ngrams
from ticket_nlp.text import NOT_PREFIX, finish_normalizing, script_forms


def _tfidf(counts: sp.csr_matrix, idf: np.ndarray, sublinear: bool) -> sp.csr_matrix:
    """TfidfTransformer(norm="l2") on counts, as scikit-learn computes it."""
    if sublinear:
        np.log(counts.data, out=counts.data)
        counts.data += 1
    counts.data *= idf[counts.indices]
    rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
    norms = np.sqrt(np.bincount(rows, weights=counts.data ** 2, minlength=counts.shape[0]))
    norms[norms == 0] = 1
    counts.data /= norms[rows]
    return counts


def _csr(arrays: tuple[bytes, bytes, bytes], n_columns: int) -> sp.csr_matrix:
    """A CSR matrix from the C extension's (indptr, indices, counts) bytes."""
    indptr, indices, counts = (np.frombuffer(a, dtype=t) for a, t in zip(arrays, (np.int64, np.int64, np.float64),
                                                                          strict=True))
    return sp.csr_matrix((counts.copy(), indices, indptr), shape=(len(indptr) - 1, n_columns))


def word_ngrams(tokens: list[str], min_n: int, max_n: int) -> list[str]:
    """The n-grams scikit-learn's word analyzer makes from a token list (same strings, same counts)."""
    grams = list(tokens) if min_n == 1 else []
    for n in range(max(min_n, 2), max_n + 1):
        grams.extend(" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
    return grams


class CompiledPipeline:
    """normalise -> segment -> word + char TF-IDF -> linear scores -> calibration, from a fitted Pipeline."""

    def __init__(self, pipeline: Pipeline):
        normalizer = pipeline.named_steps["normalize"]
        self.emoji, self.mask = normalizer.emoji, normalizer.mask
        branches = dict(pipeline.named_steps["features"].transformer_list)
        self.segmenter = pipeline.named_steps["segment"]
        words: FastTfidfVectorizer = branches["words"]
        self.word_ngrams, self.word_vocabulary = tuple(words.ngram_range), words.vocabulary_
        self.word_lookup = words.vocabulary_.get
        self.word_idf, self.word_sublinear = words.idf_, words.sublinear_tf
        self.chars: CharNgramTfidf | None = branches.get("chars")
        self.word_table: bytes | bool | None = None  # C lookup tables, see _native_tables
        self.char_table: bytes | None = None
        n_words = len(words.vocabulary_)
        calibrated = pipeline.named_steps["clf"].calibrated_classifiers_[0]
        if calibrated.method not in ("sigmoid", "isotonic") or \
                list(calibrated.classes) != list(calibrated.estimator.classes_):
            raise ValueError("CompiledPipeline supports sigmoid and isotonic calibration only")
        self.method = calibrated.method
        base = calibrated.estimator
        coef = base.coef_.toarray() if sp.issparse(base.coef_) else np.asarray(base.coef_)
        self.classes = list(calibrated.classes)
        self.word_coef = np.ascontiguousarray(coef[:, :n_words].T)
        self.char_coef = np.ascontiguousarray(coef[:, n_words:].T)
        self.intercept = np.asarray(base.intercept_)
        if self.method == "sigmoid":
            self.cal_a = np.array([c.a_ for c in calibrated.calibrators])
            self.cal_b = np.array([c.b_ for c in calibrated.calibrators])
        else:  # IsotonicRegression(out_of_bounds="clip"): clip, then linear interpolation
            self.isotonic = [(c.X_min_, c.X_max_, c.X_thresholds_, c.y_thresholds_) for c in calibrated.calibrators]

    def normalize(self, texts: list[object]) -> tuple[list[str], list[str | None]]:
        """Normalised texts, and each one's ``script_form`` (evidence spans reuse it)."""
        strings = [t for t in texts if isinstance(t, str)]
        if len(strings) == len(texts):
            scripts: list[str | None] = script_forms(strings)
        else:
            forms = iter(script_forms(strings))
            scripts = [next(forms) if isinstance(t, str) else None for t in texts]
        emoji, mask = self.emoji, self.mask
        return [finish_normalizing(s, emoji, mask) if s is not None else "" for s in scripts], scripts

    def features(self, normalized: list[str]) -> tuple[sp.csr_matrix, sp.csr_matrix | None]:
        """Word and char TF-IDF blocks (kept apart: evidence reads them separately)."""
        tokens = self.segmenter.transform(normalized)
        native = speedups.native if self._native_tables() else None
        if native is not None:
            words = _csr(native.word_ngram_counts(tokens, *self.word_ngrams, self.word_table), len(self.word_idf))
        else:
            indices: list[int] = []
            indptr = [0]
            for toks in tokens:
                grams = word_ngrams(toks, *self.word_ngrams)
                indices.extend([j for j in map(self.word_lookup, grams) if j is not None])
                indptr.append(len(indices))
            words = sp.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(normalized), len(self.word_idf)))
            words.sum_duplicates()
        words = _tfidf(words, self.word_idf, self.word_sublinear)
        if self.chars is None:
            return words, None
        if native is not None:
            texts = native.join_tokens(tokens, NOT_PREFIX, NEGATED_MARK if self.chars.negated == "mask" else None)
            counts = _csr(native.char_ngram_counts(texts, *self.chars.ngram_range, self.char_table),
                          len(self.chars.hashes_))
        else:
            rows, hashes, _, _, _ = _hashed_ngrams(self.chars.texts(tokens), tuple(self.chars.ngram_range))
            counts = self.chars._counts(rows, hashes, len(normalized))
        return words, _tfidf(counts, self.chars.tfidf_.idf_, self.chars.sublinear_tf)

    def _native_tables(self) -> bool:
        """Whether the C extension can run: it is built, and the vocabularies' hash tables (about
        10 MB, made on first use in the process that scores) have no colliding entries."""
        if speedups.native is None or self.word_table is False:
            return False
        if self.word_table is None:
            try:
                self.word_table = speedups.native.word_table(self.word_vocabulary)
                if self.chars is not None:
                    self.char_table = speedups.native.ngram_table(self.chars.hashes_.tobytes())
            except ValueError:  # two n-grams share a 64-bit hash: keep the exact dict lookups
                self.word_table = False
                return False
        return True

    def proba(self, words: sp.csr_matrix, chars: sp.csr_matrix | None) -> np.ndarray:
        """Calibrated probabilities, columns in ``self.classes`` order."""
        scores = words @ self.word_coef + self.intercept
        if chars is not None:
            scores = scores + chars @ self.char_coef
        if self.method == "sigmoid":
            proba = expit(-(self.cal_a * scores + self.cal_b))
        else:
            proba = np.column_stack([np.interp(np.clip(scores[:, k], lo, hi), xs, ys)
                                     for k, (lo, hi, xs, ys) in enumerate(self.isotonic)])
        total = proba.sum(axis=1, keepdims=True)
        uniform = np.full_like(proba, 1 / proba.shape[1])
        return np.divide(proba, total, out=uniform, where=total != 0)
