"""The baselines `evaluate --baselines` scores beside the model must answer every text."""

from __future__ import annotations

from ticket_nlp.baselines import FastTextClassifier, KeywordClassifier, PlainTfidfClassifier


def test_keyword_rules_follow_labeling_words():
    assert KeywordClassifier().predict(["袖口开线了", "快递一直没到", "不喜欢", "偏大一码", "差差差"]) == [
        "quality_defect", "logistics", "no_reason_return", "size_exchange", "other"]


def test_trained_baselines_answer_every_text_even_with_no_known_word(corpus_rows):
    rows = corpus_rows[::5]
    texts, labels = [r["description"] for r in rows], [r["label"] for r in rows]
    unseen = ["㐀㐁㐂", "", "袖口开线了"]  # no word either model has seen; empty; a plain one
    for model in (FastTextClassifier(epoch=5).fit(texts, labels), PlainTfidfClassifier().fit(texts, labels)):
        predicted = model.predict(unseen)
        assert len(predicted) == 3 and set(predicted) <= set(labels)
    majority = max(set(labels), key=labels.count)
    assert FastTextClassifier(epoch=5).fit(texts, labels).predict(["㐀㐁㐂"]) == [majority]
