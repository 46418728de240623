"""Vectorizers for the pipeline, built for batch speed (a separate module because they are the
hot path: every row of every export goes through them).

- ``FastTfidfVectorizer``: scikit-learn's TfidfVectorizer with a faster ``transform`` for the word
  branch (tokens from the Segmenter, n-grams and vocabulary are scikit-learn's own).
- ``CharNgramTfidf``: character n-gram TF-IDF computed with NumPy over the whole batch at once:
  each n-gram is a 64-bit hash of its code points, the vocabulary is the sorted array of hashes
  seen in training, and lookup is one ``searchsorted``. Output equals a char-analyzer
  TfidfVectorizer's up to hash collisions, which at 64 bits do not happen in practice.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfTransformer, TfidfVectorizer
from sklearn.utils.validation import check_is_fitted

from ticket_nlp.text import NOT_PREFIX

_MULT = np.uint64(1000003)
NEGATED_MARK = "¬"


def tokens_to_text(tokens: Sequence[str] | str, negated: str = "mask") -> str:
    """The char branch's view of a segmented text: tokens joined back, each negated word replaced
    by one mark (``negated="mask"``, so 没有破损 has no 破损 n-gram) or restored (``"keep"``)."""
    if isinstance(tokens, str):
        return tokens
    if negated == "mask":
        return "".join(NEGATED_MARK if t.startswith(NOT_PREFIX) else t for t in tokens)
    return "".join(t.removeprefix(NOT_PREFIX) for t in tokens)


def _pack_strings(strings: Sequence[object]) -> tuple[str, np.ndarray] | None:
    """Many short strings as one string and their lengths (None if any is not a str).

    A model holds about 400k n-gram strings. joblib unpickles with the pure-Python pickle machine,
    one opcode at a time, so loading them one by one took a second of every CLI call, API start
    and Spark task; one string and one integer array load at once."""
    if not all(isinstance(s, str) for s in strings):
        return None
    return "".join(strings), np.fromiter(map(len, strings), dtype=np.int64, count=len(strings))


def _unpack_strings(packed: tuple[str, np.ndarray]) -> list[str]:
    joined, lengths = packed
    ends = np.cumsum(lengths, dtype=np.int64).tolist()
    return [joined[start:end] for start, end in zip([0, *ends[:-1]], ends, strict=True)]


class FastTfidfVectorizer(TfidfVectorizer):
    """TfidfVectorizer whose ``transform`` does one dict lookup per n-gram instead of a
    try/except each, which is slow when most n-grams of new text are unseen. Pickled with its
    vocabulary packed (``_pack_strings``)."""

    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: the base may return the live __dict__
        vocabulary = state.get("vocabulary_")
        if isinstance(vocabulary, dict):
            terms = list(vocabulary)
            packed = _pack_strings(terms)
            if packed is not None:
                state["vocabulary_"] = None
                state["_packed_vocabulary"] = (*packed, np.fromiter(vocabulary.values(), np.int64, len(terms)))
        return state

    def __setstate__(self, state):
        packed = state.pop("_packed_vocabulary", None)
        if packed is not None:
            state["vocabulary_"] = dict(zip(_unpack_strings(packed[:2]), packed[2].tolist(), strict=True))
        super().__setstate__(state)

    def transform(self, raw_documents):
        check_is_fitted(self, "vocabulary_")
        analyze, lookup = self.build_analyzer(), self.vocabulary_.get
        indices: list[int] = []
        indptr = [0]
        for doc in raw_documents:
            indices.extend([j for j in map(lookup, analyze(doc)) if j is not None])
            indptr.append(len(indices))
        counts = sp.csr_matrix((np.ones(len(indices), dtype=self.dtype), indices, indptr),
                               shape=(len(indptr) - 1, len(self.vocabulary_)))
        counts.sum_duplicates()
        if self.binary:
            counts.data.fill(1)
        return self._tfidf.transform(counts, copy=False)


def _hashed_ngrams(docs: Sequence[str], ngram_range: tuple[int, int]):
    """(doc index, n-gram hash, start offset in the joined text, n) for every n-gram of every doc."""
    joined = "\0".join(d.replace("\0", "") for d in docs)
    codes = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    is_sep = codes == 0
    seps_before = np.concatenate([[0], np.cumsum(is_sep)])  # separators in codes[:i]
    rows, hashes, starts, sizes = [], [], [], []
    for n in range(ngram_range[0], ngram_range[1] + 1):
        count = len(codes) - n + 1
        if count <= 0:
            continue
        valid = (seps_before[n:n + count] - seps_before[:count]) == 0
        h = np.full(count, n, dtype=np.uint64)
        for k in range(n):
            h = (h * _MULT) ^ codes[k:k + count]
        pos = np.nonzero(valid)[0]
        rows.append(seps_before[pos])
        hashes.append(h[pos])
        starts.append(pos)
        sizes.append(np.full(len(pos), n))
    if not rows:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.astype(np.uint64), empty, empty, joined
    return (np.concatenate(rows), np.concatenate(hashes), np.concatenate(starts), np.concatenate(sizes), joined)


class CharNgramTfidf(BaseEstimator, TransformerMixin):
    """Character n-gram TF-IDF, vectorised over the batch (see the module docstring).

    Takes strings, or token lists from the Segmenter (see ``tokens_to_text`` for ``negated``).
    """

    def __init__(self, ngram_range: tuple[int, int] = (1, 3), min_df: int = 1, sublinear_tf: bool = True,
                 negated: str = "mask"):
        self.ngram_range = ngram_range
        self.min_df = min_df
        self.sublinear_tf = sublinear_tf
        self.negated = negated

    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: the base may return the live __dict__
        ngrams = state.get("ngrams_")
        packed = _pack_strings(ngrams.tolist()) if ngrams is not None else None
        if packed is not None:
            state["ngrams_"] = None
            state["_packed_ngrams"] = packed
        return state

    def __setstate__(self, state):
        packed = state.pop("_packed_ngrams", None)
        if packed is not None:
            state["ngrams_"] = np.array(_unpack_strings(packed), dtype=object)
        super().__setstate__(state)

    def texts(self, X) -> list[str]:
        return [tokens_to_text(doc, self.negated) for doc in X]

    def fit(self, X, y: object = None) -> CharNgramTfidf:
        docs = self.texts(X)
        rows, hashes, starts, sizes, joined = _hashed_ngrams(docs, tuple(self.ngram_range))
        pairs = np.unique(np.stack([hashes, rows.astype(np.uint64)]), axis=1)  # each (hash, doc) once
        unique, df = np.unique(pairs[0], return_counts=True)
        _, first = np.unique(hashes, return_index=True)  # same sorted hashes, first occurrence of each
        keep = df >= self.min_df
        self.hashes_ = unique[keep]
        # one example string per column: feature names, and what evidence spans search for
        self.ngrams_ = np.array([joined[s:s + n] for s, n in zip(starts[first[keep]], sizes[first[keep]], strict=True)],
                                dtype=object)
        self.tfidf_ = TfidfTransformer(sublinear_tf=self.sublinear_tf).fit(self._counts(rows, hashes, len(docs)))
        return self

    def _counts(self, rows: np.ndarray, hashes: np.ndarray, n_docs: int) -> sp.csr_matrix:
        cols = np.searchsorted(self.hashes_, hashes)
        cols[cols == len(self.hashes_)] = 0
        known = self.hashes_[cols] == hashes if len(self.hashes_) else np.zeros(len(hashes), bool)
        counts = sp.csr_matrix((np.ones(int(known.sum())), (rows[known], cols[known])),
                               shape=(n_docs, len(self.hashes_)))
        counts.sum_duplicates()
        return counts

    def transform(self, X: Sequence[str]) -> sp.csr_matrix:
        check_is_fitted(self, "hashes_")
        docs = self.texts(X)
        rows, hashes, _, _, _ = _hashed_ngrams(docs, tuple(self.ngram_range))
        return self.tfidf_.transform(self._counts(rows, hashes, len(docs)), copy=False)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "hashes_")
        return self.ngrams_
