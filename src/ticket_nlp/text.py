"""Text handling: normalise, mask personal data, segment with negation kept.

Everything here runs inside the model's scikit-learn Pipeline (``TextNormalizer``, ``Segmenter``),
so training, the CLI, the API and Spark all see text the same way. ``mask_pii`` is also what the
logs use, so phone and order numbers never reach a log line.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

from sklearn.base import BaseEstimator, TransformerMixin

from ticket_nlp import speedups
from ticket_nlp.config import MAX_TEXT_CHARS, MIN_CONTENT_CHARS, user_dict_path

# --- masking -------------------------------------------------------------------------------------
# Placeholders are ASCII words in capitals: the segmenter keeps each as one token, and lower-casing
# of the text happens before masking, so no buyer's word can collide with them.
URL_RE = re.compile(r"(?:https?:/{0,2}|www\.)[\w./?=&%#:~+-]+|\b[a-z0-9-]+\.(?:cn|com|net)/[\w./?=&%#-]*", re.I)
# Mobile numbers (plain or as exports mask them: 138****6632) and landlines (010-12345678).
PHONE_RE = re.compile(r"(?<![\dA-Za-z*])(?:1[3-9]\d[\d*]{4}\d{4}|0\d{2,3}-?\d{7,8})(?![\d*])")
# Order / waybill numbers: 10+ digits, or letters+digits with a masked middle (2024****5521, SF14****9920).
ORDER_RE = re.compile(r"(?<![A-Za-z0-9*])(?:[A-Za-z]{0,4}\d{10,}|[A-Za-z]{0,4}\d*\*{3,}\d+)(?![A-Za-z0-9*])")
# Addresses (logs only): a run of CJK ending in a province/city marker and going on to a street or room.
ADDRESS_RE = re.compile(r"[\u4e00-\u9fff]{1,10}(?:省|市|自治区)[\u4e00-\u9fff\w\-()（）]{0,30}?(?:路|街|道|巷|号|室|栋|幢|单元|小区)(?:[\w\-]{0,12}(?:号|室|栋|楼))?")

_DIGIT_RE = re.compile(r"\d")


def mask_pii(text: str, addresses: bool = False, urls: bool = True) -> str:
    """Replace URLs, phone numbers and order numbers (and, for logs, addresses) with placeholders.

    Cheap membership checks guard each pattern: most descriptions have no digits and no links, and
    this runs on every row of every batch.
    """
    if urls and ("/" in text or "www" in text):
        text = URL_RE.sub(" URL ", text)
    if _DIGIT_RE.search(text):
        text = PHONE_RE.sub(" PHONE ", text)
        text = ORDER_RE.sub(" ORDERNO ", text)
    if addresses:
        text = ADDRESS_RE.sub(" ADDRESS ", text)
    return text


# --- normalisation -------------------------------------------------------------------------------
EMOJI_RE = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\ufe0f\u200d]")


@lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s.json")


def to_simplified(text: str) -> str:
    return _t2s().convert(text)


# Most Chinese descriptions fail the NFKC check only because of full-width punctuation (，！？),
# the ideographic space or "…". Each of these maps to its NFKC decomposition alone, so replacing
# them and finding the result normalised is NFKC, without calling the much slower
# unicodedata.normalize (tests/code/test_text.py compares the two).
_COMPAT_PUNCT = {c: unicodedata.normalize("NFKC", chr(c)) for c in (*range(0xFF01, 0xFF5F), 0x3000, 0x2026)}


def nfkc(text: str) -> str:
    if unicodedata.is_normalized("NFKC", text):
        return text
    quick = speedups.native.fold_punct(text) if speedups.native is not None else text.translate(_COMPAT_PUNCT)
    return quick if unicodedata.is_normalized("NFKC", quick) else unicodedata.normalize("NFKC", text)


def script_form(text: str) -> str:
    """The first half of normalising: NFKC, simplified script, lower-case. Positions usually match
    the buyer's text one to one here (masks and collapsed spaces come after), which is what lets
    evidence spans found in it point back into the original (``char_alignment``)."""
    text = nfkc(text[:MAX_TEXT_CHARS])
    return (to_simplified(text) if not text.isascii() else text).lower()


_SEPARATOR = "\x1e"  # ASCII record separator: in no OpenCC phrase, so conversion never crosses it


def script_forms(texts: list[str]) -> list[str]:
    """``script_form`` of many texts with one OpenCC call (a call costs more than the
    conversion of a short text); per text when a text holds the separator."""
    flat = [nfkc(t[:MAX_TEXT_CHARS]) for t in texts]
    joined = _SEPARATOR.join(flat)
    if joined.isascii():
        return [t.lower() for t in flat]
    converted = to_simplified(joined).split(_SEPARATOR)
    if len(converted) != len(flat):  # a text had the separator in it
        converted = [to_simplified(t) for t in flat]
    return [t.lower() for t in converted]


def finish_normalizing(text: str, emoji: str = "keep", mask: bool = True) -> str:
    """The second half: masks, the emoji rule, one space between words."""
    if mask:
        text = mask_pii(text)
    if emoji == "drop":
        text = EMOJI_RE.sub(" ", text)
    return " ".join(text.split())


def normalize_text(text: object, emoji: str = "keep", mask: bool = True) -> str:
    """Canonical form of a description: NFKC, simplified script, lower-case, masked, one space.

    ``emoji="drop"`` removes emoji; the default keeps them, since they are tokens of their own
    (😡 leans negative but names no problem, and the comparison in docs/model.md shows keeping
    them costs nothing).
    """
    if not isinstance(text, str):
        return ""
    return finish_normalizing(script_form(text), emoji, mask)


# MIN_CONTENT_CHARS content characters with anything between: found in the first few characters
# of a usual description, where counting all of them would read the whole text.
_ENOUGH_CONTENT_RE = re.compile(r"[^\W_]" + r"[\W_]*[^\W_]" * (MIN_CONTENT_CHARS - 1))


def has_content(text: str) -> bool:
    """At least MIN_CONTENT_CHARS letters, digits or CJK characters: enough to read a problem from
    (or a claim against)."""
    return _ENOUGH_CONTENT_RE.search(text) is not None


def char_alignment(original: str, script: str | None = None) -> tuple[str, list[int] | range]:
    """The original text in normalised script with, per output character, its original index.

    Used to put evidence terms (found in normalised text) back onto the buyer's own characters.
    Masking is left out: placeholders are never evidence. Usually NFKC and lower-casing keep the
    length and the mapping is the identity; otherwise it is built character by character.
    ``script``, the text's ``script_form`` when the caller has it already, saves converting twice.
    """
    if script is not None and len(script) == len(original):
        return script, range(len(original))
    flat = nfkc(original).lower()
    if len(flat) == len(original):
        index: list[int] | range = range(len(original))
    else:
        pieces = [nfkc(ch).lower() for ch in original]
        index = [i for i, piece in enumerate(pieces) for _ in piece]
        flat = "".join(pieces)
    simplified = to_simplified(flat)
    if len(simplified) != len(flat):  # a phrase conversion changed length: convert char by char
        simplified = "".join(to_simplified(ch) if len(to_simplified(ch)) == 1 else ch for ch in flat)
    return simplified, index


class TextNormalizer(BaseEstimator, TransformerMixin):
    """Pipeline step: raw descriptions (any objects) -> normalised strings."""

    def __init__(self, emoji: str = "keep", mask: bool = True):
        self.emoji = emoji
        self.mask = mask

    def fit(self, X: Iterable[object], y: object = None) -> TextNormalizer:
        return self

    def transform(self, X: Iterable[object]) -> list[str]:
        return [normalize_text(x, self.emoji, self.mask) for x in X]


# --- segmentation --------------------------------------------------------------------------------
NEGATORS = frozenset({"不", "没", "没有", "无", "未", "别", "非", "不是", "并不", "并没有", "从未", "毫无",
                      "不太", "不怎么", "没什么", "木有", "没啥", "并非", "不会"})
# A negation ends at clause punctuation or at a contrast word: 没有质量问题，就是不喜欢.
SCOPE_BREAKERS = frozenset({"但", "但是", "就是", "可是", "只是", "而且", "却", "不过", "还是", "反而", "可"})
NEGATION_SCOPE = 3
NOT_PREFIX = "NOT_"
# Punctuation and spaces carry no words; emoji (category So) do and are kept as tokens.
PUNCT_RE = re.compile(r"^[\s!-/:-@\[-`{-~\u3000-\u303f\uff01-\uff0f\uff1a-\uff20\u2010-\u2027\u2030-\u205e…·]+$")


def read_user_dict(path: str | Path) -> list[tuple[str, int | None]]:
    """jieba user-dictionary format: ``word [freq] [tag]`` per line, # for comments."""
    words = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        freq = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        words.append((parts[0], freq))
    return words


@lru_cache(maxsize=65536)
def is_punct(token: str) -> bool:
    return PUNCT_RE.match(token) is not None


def mark_negation(tokens: Sequence[str]) -> list[str]:
    """Drop punctuation and prefix the words after a negator, so 没有 破损 never reads as 破损."""
    out: list[str] = []
    left = 0
    for tok in tokens:
        if is_punct(tok):
            left = 0
            continue
        if tok in NEGATORS:
            out.append(tok)
            left = NEGATION_SCOPE
        elif tok in SCOPE_BREAKERS:
            out.append(tok)
            left = 0
        elif left:
            out.append(NOT_PREFIX + tok)
            left -= 1
        else:
            out.append(tok)
    return out


class Segmenter(BaseEstimator, TransformerMixin):
    """Pipeline step: normalised strings -> word tokens (negation marked, punctuation dropped).

    ``engine="rjieba"`` (jieba-rs: jieba's dictionary and algorithm, much faster) is the default;
    ``engine="jieba"`` is the reference it is tested against. The user dictionary is read once at
    ``fit`` and stored in the estimator, so a pickled model carries its own words.
    """

    def __init__(self, engine: str = "rjieba", user_dict: str | None = None, negation: bool = True):
        self.engine = engine
        self.user_dict = user_dict
        self.negation = negation

    def fit(self, X: object = None, y: object = None) -> Segmenter:
        path = self.user_dict or user_dict_path()
        self.user_words_ = read_user_dict(path)
        return self

    def _cutter(self):
        cut = getattr(self, "_cut", None)
        if cut is None:
            if not hasattr(self, "user_words_"):
                self.fit()
            cut = self._cut = make_cutter(self.engine, tuple(self.user_words_))
        return cut

    def tokens(self, text: str) -> list[str]:
        return self.transform([text])[0]

    def transform(self, X: Iterable[str]) -> list[list[str]]:
        cut = self._cutter()
        if self.negation and speedups.native is not None:
            mark = speedups.native.mark_negation
            return [mark(cut(x), NEGATORS, SCOPE_BREAKERS, NEGATION_SCOPE, NOT_PREFIX) for x in X]
        out = []
        for x in X:
            words = [w for w in cut(x) if not w.isspace()]
            out.append(mark_negation(words) if self.negation else [w for w in words if not is_punct(w)])
        return out

    def __getstate__(self):  # the engines are native objects: rebuild them after unpickling
        state = self.__dict__.copy()
        state.pop("_cut", None)
        return state


@lru_cache(maxsize=8)
def make_cutter(engine: str, user_words: tuple[tuple[str, int | None], ...]):
    """A ``text -> list[str]`` function for the engine, with the user words added; cached per process."""
    if engine == "rjieba":
        import rjieba

        seg = rjieba.Jieba()
        for word, freq in user_words:
            seg.add_word(word, freq, None)
        return seg.cut
    if engine == "jieba":
        import logging

        import jieba

        jieba.setLogLevel(logging.WARNING)
        seg = jieba.Tokenizer()
        for word, freq in user_words:
            seg.add_word(word, freq)
        return seg.lcut
    raise ValueError(f"unknown segmentation engine {engine!r}: use 'rjieba' or 'jieba'")


def identity(x):
    """Analyzer hook for vectorizers fed with token lists (module-level so pipelines pickle)."""
    return x

