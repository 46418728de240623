"""Measure a classifier on labelled data: per-class P/R/F1, macro-F1, confusion matrix, mismatch
precision/recall, calibration error and coverage at the review threshold."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from ticket_nlp.config import LABELS
from ticket_nlp.data import LabelledSet
from ticket_nlp.model import Classifier, Prediction
from ticket_nlp.reasons import ReasonMap


def label_metrics(y_true: list[str], y_pred: list[str]) -> dict[str, Any]:
    p, r, f, n = precision_recall_fscore_support(y_true, y_pred, labels=list(LABELS), zero_division=0)
    return {
        "macro_f1": float(f1_score(y_true, y_pred, labels=list(LABELS), average="macro", zero_division=0)),
        "accuracy": float(np.mean(np.array(y_true) == np.array(y_pred))) if y_true else 0.0,
        "per_class": {lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(n[i])}
                      for i, lab in enumerate(LABELS)},
        "confusion": confusion_matrix(y_true, y_pred, labels=list(LABELS)).tolist(),
    }


def expected_mismatch(true_label: str, claimed: str | None, reasons: ReasonMap) -> int | None:
    """Ground truth for the mismatch flag, by LABELING.md: 1 when the text's true label lies outside
    every label the claim accepts; None where no flag is expected either way (no claim, unknown
    reason, a claim of 其他, or a text that names nothing concrete)."""
    labels = reasons.lookup(claimed) if claimed else None
    if not labels or "other" in labels or true_label == "other":
        return None
    return int(true_label not in labels)


def mismatch_metrics(flags: list[bool], expected: list[int | None]) -> dict[str, float]:
    pairs = [(f, e) for f, e in zip(flags, expected, strict=True) if e is not None]
    flagged_with_truth = [(f, e) for f, e in pairs if f]
    tp = sum(1 for f, e in pairs if f and e == 1)
    positives = sum(1 for _, e in pairs if e == 1)
    # A flag on a row with no expectation (claim 其他, text labelled other) is a false alarm too.
    false_alarms = sum(1 for f, e in zip(flags, expected, strict=True) if f and e is None)
    flagged = len(flagged_with_truth) + false_alarms
    return {
        "precision": tp / flagged if flagged else 0.0,
        "recall": tp / positives if positives else 0.0,
        "flagged": flagged,
        "expected": positives,
    }


def calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of the top-label confidence (equal-width bins)."""
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(ece)


def evaluate(clf: Classifier, data: LabelledSet) -> dict[str, Any]:
    """Every figure the evaluate verb prints, for one labelled set."""
    claimed = data.claimed or [None] * len(data)
    preds: list[Prediction] = clf.predict(data.texts, claimed, data.products, explain=False)
    y_pred = [p.label for p in preds]
    report = label_metrics(data.labels, y_pred)
    confidence = np.array([p.confidence for p in preds])
    correct = np.array(y_pred) == np.array(data.labels)
    review = np.array([p.needs_review for p in preds])
    report["calibration_error"] = calibration_error(confidence, correct)
    report["coverage"] = float(1 - review.mean()) if len(review) else 0.0
    report["accuracy_when_confident"] = float(correct[~review].mean()) if (~review).any() else 0.0
    if data.claimed:
        expected = data.expect_mismatch if any(e is not None for e in data.expect_mismatch) else [
            expected_mismatch(t, c, clf.reasons) for t, c in zip(data.labels, claimed, strict=True)]
        report["mismatch"] = mismatch_metrics([p.mismatch.status == "mismatch" for p in preds], expected)
    report["rows"] = len(data)
    return report


def choose_review_thresholds(proba: np.ndarray, y_true: list[str], precision: float = 0.95) -> dict[str, float]:
    """Per label, the lowest confidence at which predictions of that label reach ``precision``
    on held-out data; below it a prediction needs a human."""
    best = proba.argmax(axis=1)
    conf = proba.max(axis=1)
    truth = np.array(y_true)
    thresholds = {}
    for k, lab in enumerate(LABELS):
        mine = best == k
        order = np.argsort(-conf[mine])
        hits = (truth[mine][order] == lab).astype(float)
        if not len(hits):
            thresholds[lab] = 1.0
            continue
        running = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        ok = np.nonzero(running >= precision)[0]
        # the largest prefix (lowest threshold) whose precision still meets the target
        thresholds[lab] = float(conf[mine][order][ok[-1]]) if len(ok) else 1.0
    return thresholds
