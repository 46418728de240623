"""Baselines scored in the same run as the model (``ticket-nlp evaluate --baselines``), so the
gain is shown side by side: keyword rules, a plain jieba TF-IDF + logistic regression, and
fastText, the last two trained on the same split as the model."""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

from ticket_nlp.text import Segmenter, normalize_text

# The words LABELING.md names for each label; the label with most hits wins, ties in this order.
KEYWORDS: dict[str, tuple[str, ...]] = {
    "logistics": ("快递", "物流", "发货", "没收到", "未收到", "送货", "配送", "签收", "包裹", "运输", "压坏", "摔坏"),
    "size_exchange": ("尺码", "码数", "偏大", "偏小", "大了", "小了", "不合身", "穿不", "换小", "换大", "大一码", "小一码"),
    "quality_defect": ("质量", "坏", "破", "开线", "掉色", "起球", "假", "烂", "过期", "漏", "瑕疵", "死机", "黑屏",
                       "做工", "发错", "少发", "漏发", "不新鲜", "变质", "色差"),
    "no_reason_return": ("不喜欢", "不想要", "拍错", "买错", "买多", "用不上", "想象", "不适合"),
}


class KeywordClassifier:
    """Counts label keywords; ``other`` when none is present."""

    def predict(self, texts: list[str]) -> list[str]:
        out = []
        for text in texts:
            norm = normalize_text(text)
            hits = {lab: sum(norm.count(w) for w in words) for lab, words in KEYWORDS.items()}
            best = max(hits, key=lambda lab: hits[lab])
            out.append(best if hits[best] else "other")
        return out


class FastTextClassifier:
    """fastText supervised on the same segmentation as the model (word bigrams, 25 epochs)."""

    def __init__(self, epoch: int = 25, word_ngrams: int = 2, seed_dim: int = 50):
        self.epoch, self.word_ngrams, self.dim = epoch, word_ngrams, seed_dim
        self.segmenter = Segmenter(negation=False).fit()

    def _line(self, text: str) -> str:
        return " ".join(self.segmenter.tokens(normalize_text(text))) or "EMPTY"

    def fit(self, texts: list[str], labels: list[str]) -> FastTextClassifier:
        import fasttext

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "train.txt"
            path.write_text("".join(f"__label__{y} {self._line(t)}\n" for t, y in zip(texts, labels, strict=True)),
                            encoding="utf-8")
            self.model = fasttext.train_supervised(str(path), epoch=self.epoch, wordNgrams=self.word_ngrams,
                                                   dim=self.dim, lr=0.5, verbose=0, thread=1, seed=0)
        self.fallback = Counter(labels).most_common(1)[0][0]
        return self

    def predict(self, texts: list[str]) -> list[str]:
        out = []
        for text in texts:
            # fasttext-wheel's Python predict() breaks on NumPy 2; the C++ binding call does not.
            # A text with no word fastText knows ("无感") gets no answer: give the commonest label.
            found = self.model.f.predict(self._line(text), 1, 0.0, "strict")
            out.append(found[0][1].removeprefix("__label__") if found else self.fallback)
        return out



class PlainTfidfClassifier:
    """The textbook pipeline: ``jieba.lcut`` -> TF-IDF -> logistic regression, no normalisation."""

    def fit(self, texts: list[str], labels: list[str]) -> PlainTfidfClassifier:
        import jieba
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        jieba.setLogLevel(20)
        self.pipeline = make_pipeline(TfidfVectorizer(tokenizer=jieba.lcut, token_pattern=None, lowercase=False),
                                      LogisticRegression(max_iter=1000))
        self.pipeline.fit(texts, labels)
        return self

    def predict(self, texts: list[str]) -> list[str]:
        return list(self.pipeline.predict(texts))
