"""The model: one scikit-learn Pipeline from raw text to calibrated label probabilities, and the
``Classifier`` that wraps it with review thresholds, evidence spans and claimed-reason checks.

``Classifier.predict`` is the contract every surface (CLI, batch, API, Spark, MLflow) calls.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import scipy.sparse as sp
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

from ticket_nlp import speedups
from ticket_nlp.config import (
    BUYER_SIDE,
    LABELS,
    METADATA_FILE,
    MODEL_FILE,
    SELLER_SIDE,
    model_dir,
)
from ticket_nlp.features import NEGATED_MARK, CharNgramTfidf, FastTfidfVectorizer
from ticket_nlp.inference import CompiledPipeline
from ticket_nlp.products import ProductFamilies
from ticket_nlp.reasons import ReasonMap
from ticket_nlp.text import NOT_PREFIX, Segmenter, TextNormalizer, char_alignment, has_content, identity

DEFAULT_PARAMS: dict[str, Any] = {
    "emoji": "keep",
    "engine": "rjieba",
    "negation": True,
    "word_ngrams": (1, 2),
    "char_ngrams": (1, 3),
    "min_df": 3,  # an n-gram in fewer training texts is one writer's wording: 5x fewer features, same F1
    "sublinear_tf": True,
    "use_chars": True,
    "char_negated": "mask",  # or "keep": char n-grams of negated words too
    "classifier": "linearsvc",  # or "logreg"
    "C": 1.0,
    "class_weight": "balanced",
    "calibration": "sigmoid",  # CalibratedClassifierCV method
    "calibration_cv": 5,
}
LABEL_INDEX = {lab: i for i, lab in enumerate(LABELS)}
DEFAULT_CLAIM_AGREEMENT = 0.75  # share of claims that fit their text, when training did not measure it
EVIDENCE_TERMS = 5
IMPLAUSIBLE_FACTOR = 0.05  # a label this much rarer in a product family than overall is not what a claim means there
DECIDE_SLICE = 5000  # texts scored at once by predict and label_rows (a batch chunk is one slice)
EVIDENCE_MIN_SHARE = 0.15  # spans weaker than this share of the strongest one are noise to a reader
FUNCTION_CHARS = tuple("的了有都就也还是很太在我你他她它这那个们吧吗呢啊呀哦嘛着过和与及或把被给让到说要会能就又再才")


def build_pipeline(params: dict[str, Any] | None = None) -> Pipeline:
    """normalise -> segment -> [word n-gram TF-IDF] + [char n-gram TF-IDF] -> linear model -> calibration.

    Both branches read the segmented text, so negation reaches both: the word branch sees
    NOT_破损, the char branch sees a mark where 破损 was.
    """
    p = {**DEFAULT_PARAMS, **(params or {})}
    branches = [("words", FastTfidfVectorizer(tokenizer=identity, preprocessor=identity, token_pattern=None,
                                              lowercase=False, ngram_range=tuple(p["word_ngrams"]),
                                              min_df=p["min_df"], sublinear_tf=p["sublinear_tf"]))]
    if p["use_chars"]:
        branches.append(("chars", CharNgramTfidf(ngram_range=tuple(p["char_ngrams"]), min_df=p["min_df"],
                                                 sublinear_tf=p["sublinear_tf"], negated=p["char_negated"])))
    if p["classifier"] == "logreg":
        base = LogisticRegression(C=p["C"], class_weight=p["class_weight"], max_iter=300, tol=1e-3)
    elif p["classifier"] == "linearsvc":
        base = LinearSVC(C=p["C"], class_weight=p["class_weight"])
    else:
        raise ValueError(f"unknown classifier {p['classifier']!r}: use 'logreg' or 'linearsvc'")
    clf = CalibratedClassifierCV(base, method=p["calibration"], cv=p["calibration_cv"], ensemble=False)
    return Pipeline([
        ("normalize", TextNormalizer(emoji=p["emoji"])),
        ("segment", Segmenter(engine=p["engine"], negation=p["negation"])),
        ("features", FeatureUnion(branches)),
        ("clf", clf),
    ])


# --- results -------------------------------------------------------------------------------------
@dataclass(slots=True)  # slots: cheaper to make, and the API makes several per ticket
class Evidence:
    """A stretch of the buyer's own text that pushed toward a label."""

    term: str
    weight: float
    start: int
    end: int


@dataclass(slots=True)
class Mismatch:
    """How the claimed reason relates to what the text says.

    status: consistent (not contradicted) | mismatch (the text points confidently elsewhere) |
    not_claimed (no reason given) | unknown_reason (not in the mapping) | insufficient_text
    (the text names nothing concrete, so it supports and contradicts no claim).
    severity: none | low | high (high = the contradiction changes who is at fault: seller-side
    quality/logistics vs. buyer-side no-reason/size).
    """

    claimed_reason: str | None
    claimed_label: str | None
    claimed_labels: list[str]
    status: str
    severity: str = "none"
    evidence: list[Evidence] = field(default_factory=list)


@dataclass(slots=True)
class Prediction:
    label: str
    probabilities: dict[str, float]
    confidence: float
    needs_review: bool
    evidence: list[Evidence]
    mismatch: Mismatch
    product_family: str | None = None  # the family that reweighted the probabilities, if any

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; written out by hand because ``dataclasses.asdict`` deep-copies and costs
        more than the prediction itself on a 1,000-text API batch."""
        m = self.mismatch
        return {
            "label": self.label,
            "probabilities": dict(self.probabilities),
            "confidence": self.confidence,
            "needs_review": self.needs_review,
            "evidence": [_evidence_dict(e) for e in self.evidence],
            "mismatch": {"claimed_reason": m.claimed_reason, "claimed_label": m.claimed_label,
                         "claimed_labels": list(m.claimed_labels), "status": m.status, "severity": m.severity,
                         "evidence": [_evidence_dict(e) for e in m.evidence]},
            "product_family": self.product_family,
        }


def _evidence_dict(e: Evidence) -> dict[str, Any]:
    return {"term": e.term, "weight": e.weight, "start": e.start, "end": e.end}


# --- the classifier ------------------------------------------------------------------------------
class ArtifactError(RuntimeError):
    """The model directory is missing, changed since training, or not ours."""


MODEL_URI_SCHEMES = ("runs:/", "models:/", "mlflow-artifacts:/")
PYFUNC_ARTIFACT = "model_dir"  # the key of the model directory among a pyfunc model's artifacts


def is_model_uri(path: str | Path) -> bool:
    return str(path).startswith(MODEL_URI_SCHEMES)


def resolve_model_uri(uri: str) -> Path:
    """Download an MLflow model (the pyfunc ``train`` logs) and return its model directory.
    mlflow is imported here only, so loading a plain directory stays fast."""
    import mlflow

    from ticket_nlp.config import tracking_uri

    store = tracking_uri()
    try:  # the store is passed, not set globally: loading a model leaves MLflow's state alone
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, tracking_uri=store, registry_uri=store))
    except Exception as err:  # MlflowException, missing run/alias, unreachable server
        raise ArtifactError(f"cannot fetch model {uri} from {tracking_uri()}: {err}") from err
    # the pyfunc keeps the model directory under artifacts/<its original directory name>
    for candidate in (local, *sorted((local / "artifacts").glob("*/"))):
        if (candidate / METADATA_FILE).exists() and (candidate / MODEL_FILE).exists():
            return candidate
    raise ArtifactError(f"{uri} is not a ticket-nlp model (no {MODEL_FILE} + {METADATA_FILE} in it or its artifacts)")


def freeze_heap() -> None:
    """Move everything alive now (a loaded model's vocabularies: millions of objects) out of the
    garbage collector's sight. Otherwise each full collection walks them all, about 90 ms, which
    every other 1,000-ticket API batch paid. Unfreezing first lets a replaced model's cycles go.
    Call it after loading a model in a long-lived process (API workers, scoring workers)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Classifier:
    """A trained pipeline plus the decisions made around it (thresholds, reasons, evidence)."""

    def __init__(self, pipeline: Pipeline, metadata: dict[str, Any] | None = None,
                 reasons: ReasonMap | None = None):
        self.pipeline = pipeline
        self.metadata = metadata or {}
        self.reasons = reasons or ReasonMap.load()
        thresholds = self.metadata.get("thresholds", {})
        self.review_thresholds: dict[str, float] = thresholds.get("review", dict.fromkeys(LABELS, 0.5))
        self.mismatch_threshold: float = thresholds.get("mismatch", 0.6)
        self.claim_agreement: float = thresholds.get("claim_agreement", DEFAULT_CLAIM_AGREEMENT)
        self.set_product_priors(self.metadata.get("product_priors"))
        try:
            self._compiled: CompiledPipeline | None = CompiledPipeline(pipeline)
        except ValueError:  # e.g. isotonic calibration: use the Pipeline itself
            self._compiled = None
        self._prepare_explainer()

    # loading and saving
    @classmethod
    def load(cls, path: str | Path | None = None, reasons: ReasonMap | None = None) -> Classifier:
        """Load a model directory written by ``ticket-nlp train``, checking its sha256 first.

        ``path`` (or ``TICKET_NLP_MODEL``) may also be an MLflow model URI (``runs:/<run_id>/model``,
        ``models:/ticket-nlp@champion``): the model's files are downloaded and loaded the same way."""
        raw = str(path) if path else os.environ.get("TICKET_NLP_MODEL") or str(model_dir())
        directory = resolve_model_uri(raw) if is_model_uri(raw) else Path(raw)
        meta_path, model_path = directory / METADATA_FILE, directory / MODEL_FILE
        if not meta_path.exists() or not model_path.exists():
            raise ArtifactError(
                f"no model at {directory} (want {MODEL_FILE} and {METADATA_FILE}); "
                "train one with `ticket-nlp train`"
            )
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
        expected = metadata.get("artifact_sha256")
        actual = sha256_file(model_path)
        if not expected or actual != expected:
            raise ArtifactError(
                f"refusing to load {model_path}: its sha256 {actual[:12]}… does not match "
                f"{METADATA_FILE} ({str(expected)[:12]}…). The file was changed or is not the one "
                "`ticket-nlp train` wrote; retrain or restore it."
            )
        return cls(joblib.load(model_path), metadata, reasons)

    def save(self, directory: str | Path) -> Path:
        """Write model.joblib and metadata.json (with the artifact's sha256) atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tmp_model = directory / (MODEL_FILE + ".tmp")
        joblib.dump(self.pipeline, tmp_model, compress=3)
        self.metadata["artifact_sha256"] = sha256_file(tmp_model)
        tmp_meta = directory / (METADATA_FILE + ".tmp")
        tmp_meta.write_text(json.dumps(self.metadata, ensure_ascii=False, indent=2), encoding="utf-8")
        tmp_model.replace(directory / MODEL_FILE)
        tmp_meta.replace(directory / METADATA_FILE)
        return directory

    def set_product_priors(self, priors: dict[str, Any] | None) -> None:
        """Use the product families training measured (``products.family_factors``): their
        keyword lists and, per family, the factor each label's probability is multiplied by."""
        priors = priors or {}
        self.product_families = ProductFamilies(priors.get("keywords") or {})
        self._family_factors = {fam: np.array([f.get(lab, 1.0) for lab in LABELS])
                                for fam, f in (priors.get("factors") or {}).items()}
        # per family, the labels its items (nearly) never have: size_exchange for fruit or phones
        self._implausible = {fam: frozenset(lab for lab, f in zip(LABELS, factors, strict=True) if f < IMPLAUSIBLE_FACTOR)
                             for fam, factors in self._family_factors.items()}

    def product_family(self, product: object) -> str | None:
        """The family a product is read as, when the model has a prior for it (else None: unused)."""
        family = self.product_families.family(product)
        return family if family in self._family_factors else None

    def _families(self, products: list[object] | None) -> list[str | None] | None:
        """``product_family`` of each product; ``None`` when no product has a family with a prior."""
        if products is None or not self._family_factors:
            return None
        families = [self.product_family(p) for p in products]
        return families if any(families) else None

    def _product_factors(self, families: list[str | None]) -> np.ndarray:
        """Per text, the factors of its product's family (ones when it has none)."""
        ones = np.ones(len(LABELS))
        return np.array([self._family_factors[f] if f else ones for f in families])

    @property
    def version(self) -> str:
        return self.metadata.get("version", "unversioned")

    # prediction
    def predict_proba(self, texts: list[str], products: list[str | None] | None = None) -> np.ndarray:
        """Probabilities, columns in ``LABELS`` order."""
        return self._score(list(texts), self._families(products))[2]

    def _score(self, texts: list[object], families: list[str | None] | None = None,
               ) -> tuple[list[str], list[str | None], np.ndarray, list[sp.csr_matrix]]:
        """Normalised texts, their script forms (None when not kept), probabilities (LABELS order,
        reweighted by each product's family, ``_families``) and the feature blocks behind them."""
        if self._compiled is not None:
            normalized, scripts = self._compiled.normalize(texts)
            words, chars = self._compiled.features(normalized)
            proba = self._compiled.proba(words, chars)
            blocks = [words] if chars is None else [words, chars]
        else:
            normalized = self.pipeline.named_steps["normalize"].transform(texts)
            scripts = [None] * len(texts)
            tokens = self.pipeline.named_steps["segment"].transform(normalized)
            features = self.pipeline.named_steps["features"].transform(tokens).tocsr()
            proba = self.pipeline.named_steps["clf"].predict_proba(features)
            blocks = [features]
        proba = proba[:, self._column_order]
        if families is not None:
            proba = proba * self._product_factors(families)
            proba /= proba.sum(axis=1, keepdims=True)
        return normalized, scripts, proba, blocks

    def predict(self, texts: list[str], claimed_reasons: list[str | None] | None = None,
                products: list[str | None] | None = None, explain: bool = True) -> list[Prediction]:
        """One ``Prediction`` per text. ``claimed_reasons`` are the menu strings buyers picked;
        ``products`` the product names or categories (宝贝标题, 女装 …), which decide LABELING.md's
        fit rule ("太小了" is a size problem for trousers, a quality problem for fruit)."""
        out = []
        for text, label, shown, b, needs_review, spans, claim, family in self._decide(texts, claimed_reasons,
                                                                                      products, explain):
            evidence = [Evidence(text[s:e], round(w, 4), s, e) for s, e, w in spans]
            status, claimed_labels, severity = claim[1:]
            out.append(Prediction(
                label=label,
                probabilities=dict(zip(LABELS, shown, strict=True)),
                confidence=shown[b],
                needs_review=needs_review,
                evidence=evidence,
                mismatch=Mismatch(claim[0], claimed_labels[0] if claimed_labels else None, list(claimed_labels),
                                  status, severity, evidence if status == "mismatch" else []),
                product_family=family,
            ))
        return out

    def label_rows(self, texts: list[object], claimed_reasons: list[str | None],
                   products: list[object] | None = None) -> list[list[Any]]:
        """What batch scoring writes per row: label, confidence, needs_review, mismatch status,
        claimed label, severity, the product family that reweighted it ("" if none) and the
        evidence terms joined by spaces. The same decisions as ``predict`` (both read ``_decide``)
        without building its objects (dataclasses, dicts), which cost about a fifth of a batch
        row's time."""
        return [[label, shown[b], needs_review, claim[1], claim[2][0] if claim[2] else "", claim[3], family or "",
                 " ".join([text[s:e] for s, e, _ in spans])]
                for text, label, shown, b, needs_review, spans, claim, family in
                self._decide(texts, claimed_reasons, products, True)]

    def _decide(self, texts: list[object], claimed_reasons: list[str | None] | None,
                products: list[object] | None, explain: bool):
        """Per text: (text, label, probabilities rounded to 4 places in LABELS order, label index,
        needs_review, evidence spans as (start, end, weight), claim check as returned by ``_claim``,
        the product family that reweighted it or None)."""
        texts = list(texts)
        claimed_reasons = [None] * len(texts) if claimed_reasons is None else list(claimed_reasons)
        if len(claimed_reasons) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(claimed_reasons)} claimed reasons")
        if products is not None and len(products) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(products)} products")
        families = self._families(products)
        # in slices: memory stays bounded, and a slice's matrices stay in cache
        for lo in range(0, len(texts), DECIDE_SLICE):
            yield from self._decide_slice(texts[lo:lo + DECIDE_SLICE], claimed_reasons[lo:lo + DECIDE_SLICE],
                                          families[lo:lo + DECIDE_SLICE] if families is not None else None, explain)

    def _decide_slice(self, texts: list[object], claimed_reasons: list[str | None],
                      families: list[str | None] | None, explain: bool):
        normalized, scripts, proba, blocks = self._score(texts, families)
        best = proba.argmax(axis=1)
        top = self._top_features(blocks, best) if explain else None
        review = self.review_thresholds
        # plain Python floats and ints, rounded in one NumPy call: indexing NumPy arrays or calling
        # round() per text costs more than the rest of the loop
        for i, (text, row, shown, b) in enumerate(zip(texts, proba.tolist(), proba.round(4).tolist(), best.tolist(),
                                                      strict=True)):
            label = LABELS[b]
            spans = self._evidence_spans(text, scripts[i], *top[i]) if explain else []
            needs_review = row[b] < review.get(label, 0.5) or not has_content(normalized[i])
            family = families[i] if families is not None else None
            yield (text, label, shown, b, needs_review, spans,
                   self._claim(normalized[i], claimed_reasons[i], label, row, family), family)

    def _claim(self, normalized: str, claimed: str | None, label: str, row: list[float],
               family: str | None = None) -> tuple[str | None, str, tuple[str, ...], str]:
        """How the claimed reason relates to the text: (claimed reason, status, the labels it
        accepts, severity); see ``Mismatch`` for the statuses.

        LABELING.md's rules: 其他 is never contradicted, vague text never flagged, and a flag
        needs the text to point confidently outside every label the claim accepts.

        "Confidently" is two tests. The predicted label's probability reaches the threshold chosen
        on ``valid``; and the claim stays more likely wrong than right once the claim itself counts
        as evidence. Buyers pick a fitting reason most of the time (``claim_agreement``, measured on
        the training split), so a text that still gives the claimed labels some probability is read
        in the claim's favour: a flag is an accusation, and a seller appeals with it.

        A reason that accepts several labels (大小/尺寸与商品描述不符: size_exchange or quality_defect)
        is narrowed by the product's family: a label that family's items almost never have
        (factor below ``IMPLAUSIBLE_FACTOR`` on the training split: size_exchange for fruit) is not
        what the buyer can have meant, unless the text says it: the family comes from a category that
        can be wrong about the item (a T-shirt in a 图书 set), so a text that agrees with one of the
        reason's own labels stays consistent. A reason is never narrowed to nothing.
        """
        if claimed is None or (isinstance(claimed, str) and not claimed.strip()):
            return None, "not_claimed", (), "none"
        claimed_labels = self.reasons.lookup(claimed)
        if claimed_labels is None:
            return claimed, "unknown_reason", (), "none"
        claimed_labels = tuple(claimed_labels)
        if family is not None and len(claimed_labels) > 1:
            implausible = self._implausible[family]
            claimed_labels = tuple(c for c in claimed_labels if c == label or c not in implausible) or claimed_labels
        if "other" in claimed_labels or label in claimed_labels:
            return claimed, "consistent", claimed_labels, "none"
        if label == "other" or not has_content(normalized):
            return claimed, "insufficient_text", claimed_labels, "none"
        supported = sum(row[LABEL_INDEX[c]] for c in claimed_labels)
        if row[LABEL_INDEX[label]] >= self.mismatch_threshold and \
                claim_posterior(supported, len(claimed_labels), self.claim_agreement) < 0.5:
            crosses = any((label in SELLER_SIDE and c in BUYER_SIDE) or (label in BUYER_SIDE and c in SELLER_SIDE)
                          for c in claimed_labels)
            return claimed, "mismatch", claimed_labels, "high" if crosses else "low"
        return claimed, "consistent", claimed_labels, "none"

    # evidence
    def _prepare_explainer(self) -> None:
        clf = self.pipeline.named_steps["clf"]
        classes = list(clf.classes_)
        self._column_order = np.array([classes.index(lab) for lab in LABELS])
        base = clf.calibrated_classifiers_[0].estimator
        coef = base.coef_.toarray() if hasattr(base.coef_, "toarray") else np.asarray(base.coef_)
        coef = coef[self._column_order] if coef.shape[0] == len(LABELS) else coef
        # What pushes toward a label is its weight relative to the other labels' mean weight.
        self._push = coef - (coef.sum(axis=0, keepdims=True) - coef) / (len(LABELS) - 1)
        # Made on first use (``warm_up``), not at load: a CLI call or a batch run's reading process
        # never explains, and terms are looked up only for the columns evidence shows.
        self._branch_names: list[tuple[str, int, Any]] | None = None
        self._shown: np.ndarray | None = None
        self._terms: dict[int, tuple[str, bool]] = {}

    def warm_up(self) -> None:
        """Make now what the first prediction would: the evidence mask and the C lookup tables.
        Called before forking scoring workers, so they share one copy instead of each making its own."""
        self._shown_columns()
        if self._compiled is not None:
            self._compiled._native_tables()

    def _shown_columns(self) -> np.ndarray:
        """Per feature column, whether it is worth showing a person as evidence: not a lone
        function character (了, 的, 有 …), a negation mark or a mask placeholder. The same test as
        ``_feature_term(name)[0] not in ("", *FUNCTION_CHARS)``, without building the names."""
        if self._shown is None:
            hidden = {"", *FUNCTION_CHARS}
            shown: list[bool] = []
            for branch, _, names in self._branches():
                if branch == "words":
                    terms = (n.strip() if " " not in n and NOT_PREFIX not in n else
                             "".join(t.removeprefix(NOT_PREFIX) for t in n.split(" ")).strip() for n in names)
                else:
                    terms = (n.strip() for n in names)
                shown.extend(t not in hidden and not t.isupper() and NEGATED_MARK not in t for t in terms)
            self._shown = np.array(shown, dtype=bool)
        return self._shown

    def _top_features(self, blocks: list[sp.csr_matrix], best: np.ndarray) -> list[tuple[list[int], list[float]]]:
        """Per row, the features (words, word pairs, char n-grams) that pushed hardest toward its
        predicted label, as (columns, weights), computed for the whole batch at once."""
        if speedups.native is not None:  # the same selection, row by row in C (tests/code/test_speedups.py)
            parts, offset = [], 0
            for block in blocks:
                parts.append((np.asarray(block.indptr, np.int64), np.asarray(block.indices, np.int64),
                              np.asarray(block.data, np.float64), offset))
                offset += block.shape[1]
            return speedups.native.top_features(parts, np.ascontiguousarray(self._push, np.float64), self._shown_columns(),
                                                np.asarray(best, np.int64), EVIDENCE_TERMS * 2)
        n_rows = blocks[0].shape[0]
        rows_parts, cols_parts, weight_parts, offset = [], [], [], 0
        for block in blocks:  # word block then char block, as the FeatureUnion stacks them
            rows = np.repeat(np.arange(n_rows), np.diff(block.indptr))
            contrib = block.data * self._push[best[rows], block.indices + offset]
            keep = (contrib > 0) & self._shown_columns()[block.indices + offset]
            rows_parts.append(rows[keep])
            cols_parts.append(block.indices[keep] + offset)
            weight_parts.append(contrib[keep])
            offset += block.shape[1]
        rows, cols, weights = map(np.concatenate, (rows_parts, cols_parts, weight_parts))
        # one sort: by row, strongest first within a row (weight/(1+weight) lies in (0, 1))
        order = np.argsort(rows - weights / (1 + weights), kind="stable")
        rows, cols, weights = rows[order], cols[order], weights[order]
        # the strongest EVIDENCE_TERMS * 2 of each row: rank within the row < k
        rank = np.arange(len(rows)) - np.searchsorted(rows, rows)
        top = rank < EVIDENCE_TERMS * 2
        rows, cols, weights = rows[top], cols[top].tolist(), weights[top].tolist()
        bounds = np.searchsorted(rows, np.arange(n_rows + 1)).tolist()
        return [(cols[lo:hi], weights[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]

    def _term(self, col: int) -> tuple[str, bool]:
        """What to search for in the text for a feature column, and whether it was negated."""
        found = self._terms.get(col)
        if found is None:
            found = self._terms[col] = _feature_term(self._feature_name(col))
        return found

    def _feature_name(self, col: int) -> str:
        """The FeatureUnion's name of a column (``words__袖口 开线``, ``chars__开线``), made from the
        branch's own vocabulary: the union's get_feature_names_out would build all ~400k names."""
        for name, offset, names in reversed(self._branches()):
            if col >= offset:
                return f"{name}__{names[col - offset]}"
        raise IndexError(col)

    def _branches(self) -> list[tuple[str, int, Any]]:
        """(branch name, first column, the branch's n-gram per column) for each FeatureUnion branch."""
        if self._branch_names is None:
            branches, offset = [], 0
            for name, step in self.pipeline.named_steps["features"].transformer_list:
                if isinstance(step, CharNgramTfidf):
                    names = step.ngrams_
                elif hasattr(step, "vocabulary_"):  # the word branch: invert its vocabulary once
                    names = [""] * len(step.vocabulary_)
                    for gram, j in step.vocabulary_.items():
                        names[j] = gram
                else:
                    names = step.get_feature_names_out()
                branches.append((name, offset, names))
                offset += len(names)
            self._branch_names = branches
        return self._branch_names

    def _evidence_spans(self, original: object, script: str | None, cols: list[int],
                        weights: list[float]) -> list[tuple[int, int, float]]:
        """Where the top features' terms are in the buyer's own text, as (start, end, weight):
        overlapping finds merged (their weights added), strongest first, the weak ones dropped."""
        if not isinstance(original, str) or not len(cols):
            return []
        if script is not None and len(script) == len(original):  # the usual case: positions map one to one
            aligned, index = script, None
        else:
            aligned, index = char_alignment(original, script)
            if isinstance(index, range):
                index = None
        if speedups.native is not None:
            return speedups.native.evidence_spans(aligned, index, cols, weights, self._terms, self._term,
                                                  EVIDENCE_TERMS, EVIDENCE_MIN_SHARE)
        terms, term_of = self._terms, self._term
        spans: list[tuple[int, int, float]] = []
        for col, weight in zip(cols, weights, strict=True):
            term, negated = terms.get(col) or term_of(col)
            if not term:
                continue
            if negated:
                found = _term_spans(term, True, aligned)
            else:  # _term_spans inlined for the common case (this loop runs ten times per ticket)
                start = aligned.find(term)
                if start == -1:
                    continue
                found = [(start, start + len(term))]
                start = aligned.find(term, start + 1)
                if start != -1:
                    found.append((start, start + len(term)))
            if index is None:
                spans.extend((s, e, weight) for s, e in found)
            else:
                spans.extend((index[s], index[e - 1] + 1, weight) for s, e in found)
        if not spans:
            return []
        spans.sort()
        merged = [list(spans[0])]
        for start, end, weight in spans[1:]:
            last = merged[-1]
            if start < last[1]:  # overlapping, not merely adjacent
                if end > last[1]:
                    last[1] = end
                last[2] += weight
            else:
                merged.append([start, end, weight])
        merged.sort(key=lambda s: -s[2])
        floor = merged[0][2] * EVIDENCE_MIN_SHARE
        return [(s, e, w) for s, e, w in merged[:EVIDENCE_TERMS] if w >= floor]


def claim_posterior(supported: float, n_claimed: int, agreement: float) -> float:
    """Probability that the claimed reason is right, given the text and the claim.

    ``supported`` is the text's probability for the labels the claim accepts. A buyer picks a
    reason that fits with probability ``agreement``; one that does not fit is any of the other
    labels' reasons alike. Bayes: odds = agreement * supported / ((1 - agreement) / others * (1 - supported)).
    """
    others = max(len(LABELS) - n_claimed, 1)
    honest = agreement * supported
    dishonest = (1 - agreement) / others * (1 - supported)
    return honest / (honest + dishonest) if honest + dishonest > 0 else 0.0


def _feature_term(feature: str) -> tuple[str, bool]:
    """``words__袖口 开线`` -> ("袖口开线", False); ``words__NOT_破损`` -> ("破损", True);
    ``chars__开线`` -> ("开线", False). Placeholders (PHONE, ORDERNO) and marks give ""."""
    kind, _, term = feature.partition("__")
    negated = False
    if kind == "words":
        tokens = term.split(" ")
        negated = any(t.startswith(NOT_PREFIX) for t in tokens)
        term = "".join(t.removeprefix(NOT_PREFIX) for t in tokens)
    term = term.strip()
    if term.isupper() or NEGATED_MARK in term:
        term = ""
    return term, negated


def _term_spans(term: str, negated: bool, aligned: str) -> list[tuple[int, int]]:
    """Where a term occurs in the (aligned) text, at most twice; a negated term takes its negator."""
    spans = []
    start = aligned.find(term) if term else -1
    while start != -1 and len(spans) < 2:
        begin = start
        if negated:  # include the negator: "没有破损", not "破损"
            clause = aligned[max(0, start - 6):start]
            for neg in ("没有", "没", "不", "无", "未", "非", "别"):
                k = clause.rfind(neg)
                if k != -1:
                    begin = max(0, start - 6) + k
                    break
        spans.append((begin, start + len(term)))
        start = aligned.find(term, start + 1)
    return spans
