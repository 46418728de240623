"""Train: compare pipeline variants on ``valid``, fit the best on ``train``, choose the review and
mismatch thresholds on ``valid``, measure on ``valid`` and ``test``, and write the artifact."""

from __future__ import annotations

import hashlib
import platform
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import sklearn

from ticket_nlp import __version__
from ticket_nlp.config import LABELS
from ticket_nlp.data import LabelledSet
from ticket_nlp.evaluate import choose_review_thresholds, evaluate, expected_mismatch, label_metrics
from ticket_nlp.model import DEFAULT_CLAIM_AGREEMENT, DEFAULT_PARAMS, Classifier, build_pipeline
from ticket_nlp.products import ProductFamilies, family_factors
from ticket_nlp.reasons import ReasonMap
from ticket_nlp.text import normalize_text

if TYPE_CHECKING:  # batch's reader is needed only by a caller that self-trains
    from ticket_nlp.batch import ExportTexts

# Variants compared on the valid split; the best selectable one's params become the model's.
VARIANTS: dict[str, dict[str, Any]] = {
    "words+chars linearsvc, sigmoid": {},
    "words+chars linearsvc, isotonic": {"calibration": "isotonic"},
    "words+chars linearsvc, C=0.5": {"C": 0.5},
    "words+chars linearsvc, C=0.2": {"C": 0.2},
    "words+chars logreg, sigmoid": {"classifier": "logreg", "C": 10.0},
    "words only linearsvc": {"use_chars": False},
    "emoji dropped": {"emoji": "drop"},
    "every n-gram (min_df=1)": {"min_df": 1},
}
# Recorded for the comparison but never chosen: negation handling is a requirement
# ("没有 破损" must not read as 破损, in either branch), whatever a point of valid F1 says.
ABLATIONS: dict[str, dict[str, Any]] = {
    "ablation: chars keep negated words": {"char_negated": "keep"},
    "ablation: no negation marks": {"negation": False, "char_negated": "keep"},
}
# A variant replaces the default only when it beats it on valid by more than this: smaller gaps
# are within the noise of a 2,500-row valid split (one standard error of macro-F1 is about 0.005).
MIN_GAIN = 0.005
SPLITS = frozenset({"train", "valid", "test"})
REVIEW_PRECISION = 0.95
MISMATCH_PRECISION = 0.95
DEFAULT_MISMATCH_THRESHOLD = 0.6
# Self-training on a team's own unlabelled tickets (``--unlabelled``): a ticket joins the training
# rows under the label the first model gives it only when that model is this sure of it, and counts
# this much of a labelled row. Measured with the unlabelled real reviews of ../shared/data standing in
# for a team's tickets (docs/model.md, "Adapting to a team's own tickets").
PSEUDO_CONFIDENCE = 0.9
PSEUDO_WEIGHT = 0.5


def ensure_splits(data: LabelledSet, seed: int = 13) -> LabelledSet:
    """Keep a file's own train/valid/test column. Rows without one (a second file with no split
    column, such as exported corrections beside the corpus) are split 70/15/15 by normalised text,
    so repeated texts never straddle splits; so is everything when the column lacks train or valid."""
    given = set(data.splits)
    keep = bool(data.splits) and {"train", "valid"} <= given
    if keep and given <= SPLITS:
        return data
    data.splits = [s if keep and s in SPLITS else _hash_split(text, seed)
                   for s, text in zip(data.splits or [""] * len(data), data.texts, strict=True)]
    return data


def _hash_split(text: str, seed: int) -> str:
    bucket = int(hashlib.sha1(f"{seed}:{normalize_text(text)}".encode()).hexdigest(), 16) % 100
    return "train" if bucket < 70 else "valid" if bucket < 85 else "test"


def choose_mismatch_threshold(clf: Classifier, valid: LabelledSet,
                              target: float = MISMATCH_PRECISION) -> tuple[float, dict[str, float]]:
    """Lowest confidence at which mismatch flags on ``valid`` reach the target precision."""
    if not valid.claimed or not any(valid.claimed):
        return DEFAULT_MISMATCH_THRESHOLD, {}
    saved, clf.mismatch_threshold = clf.mismatch_threshold, 0.0
    preds = clf.predict(valid.texts, valid.claimed, valid.products, explain=False)
    clf.mismatch_threshold = saved
    expected = [expected_mismatch(t, c, clf.reasons) for t, c in zip(valid.labels, valid.claimed, strict=True)]
    candidates = np.array([p.mismatch.status == "mismatch" for p in preds])
    conf = np.array([p.confidence for p in preds])
    truth = np.array([e == 1 for e in expected])
    for t in np.arange(0.30, 0.99, 0.01):
        flags = candidates & (conf >= t)
        if flags.sum() and truth[flags].mean() >= target:
            return round(float(t), 2), {"precision": float(truth[flags].mean()),
                                        "recall": float(flags[truth].mean()) if truth.any() else 0.0}
    return DEFAULT_MISMATCH_THRESHOLD, {}


def claim_agreement(data: LabelledSet, reasons: ReasonMap) -> float:
    """Share of rows whose claimed reason accepts their label, among rows where a claim can agree
    or disagree (a known reason other than 其他, a text that is not ``other``): the prior the
    mismatch check gives a claim (``model.claim_posterior``)."""
    verdicts = []
    for label, claimed in zip(data.labels, data.claimed or [None] * len(data), strict=True):
        accepted = reasons.lookup(claimed) if claimed else None
        if accepted and "other" not in accepted and label != "other":
            verdicts.append(label in accepted)
    if len(verdicts) < 50:  # too few claims to measure: keep the default
        return DEFAULT_CLAIM_AGREEMENT
    return round(float(np.mean(verdicts)), 4)


def measure_product_priors(train_set: LabelledSet) -> dict[str, Any] | None:
    """How each product family shifts the labels in the training rows (``products.family_factors``),
    with the keyword lists that read the families; ``None`` when the data names no products."""
    products = train_set.products
    if products is None:
        return None
    families = ProductFamilies.load()
    per_row = [families.family(p) for p in products]
    factors = family_factors(train_set.labels, per_row)
    if not factors:
        return None
    rows = Counter(f for f in per_row if f in factors)
    return {"factors": factors, "rows": dict(sorted(rows.items())), "keywords": families.keywords}


def fit_variant(train: LabelledSet, params: dict[str, Any], pseudo: tuple[list[str], list[str]] | None = None,
                pseudo_weight: float = PSEUDO_WEIGHT):
    """The pipeline fitted on the train rows, plus pseudo-labelled (texts, labels) at ``pseudo_weight``."""
    pipeline = build_pipeline(params)
    start = time.perf_counter()
    if pseudo and pseudo[0]:
        weights = np.r_[np.ones(len(train)), np.full(len(pseudo[0]), pseudo_weight)]
        pipeline.fit(train.texts + pseudo[0], train.labels + pseudo[1], clf__sample_weight=weights)
    else:
        pipeline.fit(train.texts, train.labels)
    return pipeline, time.perf_counter() - start


def pseudo_label(clf: Classifier, unlabelled: ExportTexts,
                 confidence: float = PSEUDO_CONFIDENCE) -> tuple[list[str], list[str]]:
    """The unlabelled tickets the model labels with at least ``confidence``, and those labels."""
    proba = clf.predict_proba(unlabelled.texts, unlabelled.products)
    best = proba.argmax(axis=1)
    keep = np.flatnonzero(proba[np.arange(len(best)), best] >= confidence).tolist()
    return [unlabelled.texts[i] for i in keep], [LABELS[best[i]] for i in keep]


def self_training_rows(clf: Classifier, unlabelled: ExportTexts, held_out: set[str], confidence: float,
                       weight: float) -> tuple[tuple[list[str], list[str]], dict[str, Any]]:
    """The pseudo-labelled rows to add, and the record of them for ``metadata.json``. Tickets that
    are in ``held_out`` (the labelled valid and test texts) are left out: they would be trained on
    and then scored."""
    keep = [i for i, t in enumerate(unlabelled.texts) if t not in held_out]
    candidates = replace(unlabelled, texts=[unlabelled.texts[i] for i in keep],
                         products=[unlabelled.products[i] for i in keep] if unlabelled.products else None)
    texts, labels = pseudo_label(clf, candidates, confidence)
    record = {"source": unlabelled.source, "sha256": unlabelled.sha256, "rows": len(unlabelled.texts),
              "skipped": unlabelled.skipped, "held_out_dropped": len(unlabelled.texts) - len(keep),
              "confidence": confidence, "weight": weight, "added": len(texts),
              "added_per_label": {lab: labels.count(lab) for lab in LABELS}}
    return (texts, labels), record


def compare_variants(train: LabelledSet, valid: LabelledSet, base: dict[str, Any],
                     log=print) -> tuple[str, list[dict[str, Any]]]:
    rows = []
    for name, override in {**VARIANTS, **ABLATIONS}.items():
        pipeline, seconds = fit_variant(train, {**base, **override})
        f1 = label_metrics(valid.labels, list(pipeline.predict(valid.texts)))["macro_f1"]
        rows.append({"variant": name, "params": override, "valid_macro_f1": round(f1, 4),
                     "train_seconds": round(seconds, 1), "selectable": name in VARIANTS})
        log(f"  {name:<40} valid macro-F1 {f1:.4f}  ({seconds:.1f}s)")
    default = rows[0]
    best = max((r for r in rows if r["selectable"]), key=lambda r: r["valid_macro_f1"])
    if best["valid_macro_f1"] - default["valid_macro_f1"] <= MIN_GAIN:
        best = default
    return best["variant"], rows


def train(data: LabelledSet, params: dict[str, Any] | None = None, compare: bool = True,
          reasons: ReasonMap | None = None, log=print, review_precision: float = REVIEW_PRECISION,
          mismatch_precision: float = MISMATCH_PRECISION, unlabelled: ExportTexts | None = None,
          pseudo_confidence: float = PSEUDO_CONFIDENCE, pseudo_weight: float = PSEUDO_WEIGHT) -> Classifier:
    """The whole training stage; returns a Classifier whose metadata records how it was made.
    The precision targets come from an experiment config (``thresholds``) when one is given.

    With ``unlabelled`` (a team's own tickets, no labels) the model is trained twice: the second
    time also on the tickets the first one labels confidently (``pseudo_label``), so it learns the
    words those tickets use around the cues it already knows. Thresholds and figures always come
    from the labelled valid and test splits."""
    data = ensure_splits(data)
    train_set, valid, test = data.split("train"), data.split("valid"), data.split("test")
    if not len(train_set) or not len(valid):
        raise ValueError("training needs rows in both the train and valid splits")
    base = {**DEFAULT_PARAMS, **(params or {})}
    counts = Counter(train_set.labels)
    few = {lab: counts[lab] for lab in LABELS if counts[lab] < base["calibration_cv"]}
    if few:
        raise ValueError(f"the train split has too few rows for {few}: calibration needs at least "
                         f"{base['calibration_cv']} per label (and a useful model far more)")
    comparison: list[dict[str, Any]] = []
    chosen = "given params"
    if compare:
        log(f"comparing {len(VARIANTS)} variants on valid ({len(train_set)} train / {len(valid)} valid rows)")
        chosen, comparison = compare_variants(train_set, valid, base, log)
        base = {**base, **VARIANTS[chosen]}
    pipeline, seconds = fit_variant(train_set, base)
    clf = Classifier(pipeline, {}, reasons)
    product_priors = measure_product_priors(train_set)
    clf.set_product_priors(product_priors)
    self_training = None
    if unlabelled is not None:
        pseudo, self_training = self_training_rows(clf, unlabelled, set(valid.texts) | set(test.texts),
                                                   pseudo_confidence, pseudo_weight)
        log(f"self-training: {self_training['added']} of {self_training['rows']} unlabelled tickets labelled with "
            f"confidence >= {pseudo_confidence}, added at weight {pseudo_weight}")
        pipeline, seconds = fit_variant(train_set, base, pseudo, pseudo_weight)
        clf = Classifier(pipeline, {}, reasons)
        clf.set_product_priors(product_priors)
    proba = clf.predict_proba(valid.texts, valid.products)
    clf.review_thresholds = choose_review_thresholds(proba, valid.labels, review_precision)
    clf.claim_agreement = claim_agreement(train_set, clf.reasons)
    clf.mismatch_threshold, mismatch_at = choose_mismatch_threshold(clf, valid, mismatch_precision)
    trained_at = datetime.now(UTC)
    clf.metadata = {
        "name": "ticket-nlp",
        "version": f"{trained_at:%Y%m%d%H%M%S}-{data.sha256[:8]}",
        "trained_at": trained_at.isoformat(timespec="seconds"),
        "labels": list(LABELS),
        "params": {k: list(v) if isinstance(v, tuple) else v for k, v in base.items()},
        "variant": chosen,
        "variant_comparison": comparison,
        "data": {"source": data.source, "sha256": data.sha256, "rows": len(data),
                 "train": len(train_set), "valid": len(valid), "test": len(test)},
        "thresholds": {"review": clf.review_thresholds, "mismatch": clf.mismatch_threshold,
                       "claim_agreement": clf.claim_agreement,
                       "review_precision_target": review_precision,
                       "mismatch_precision_target": mismatch_precision,
                       "mismatch_on_valid": mismatch_at},
        "product_priors": product_priors,
        "self_training": self_training,
        "train_seconds": round(seconds, 1),
        "versions": {"ticket_nlp": __version__, "scikit_learn": sklearn.__version__,
                     "numpy": np.__version__, "python": platform.python_version()},
    }
    clf.metadata["metrics"] = {"valid": _summary(evaluate(clf, valid))}
    if len(test):
        clf.metadata["metrics"]["test"] = _summary(evaluate(clf, test))
    return clf


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    keep = ("macro_f1", "accuracy", "coverage", "accuracy_when_confident", "calibration_error", "rows", "mismatch")
    out = {k: report[k] for k in keep if k in report}
    out["per_class_f1"] = {lab: round(v["f1"], 4) for lab, v in report["per_class"].items()}
    return out
