"""The model as an MLflow pyfunc: input a DataFrame ``text`` (+ optional ``claimed_reason``), output
one row per text with the label, probabilities, review flag and claimed-reason check — the same
``Classifier.predict`` the CLI, API and batch call, so `mlflow models serve` and
`mlflow.pyfunc.spark_udf` need nothing else.

The model directory ``train`` wrote (sha256-checked on load) and the claimed-reason mapping it
was evaluated with travel as the pyfunc's artifacts.
"""

from __future__ import annotations

import json
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from ticket_nlp.config import LABELS
from ticket_nlp.model import PYFUNC_ARTIFACT, Classifier, Prediction
from ticket_nlp.reasons import ReasonMap

OUTPUT_COLUMNS = ["label", "confidence", "needs_review", *(f"prob_{lab}" for lab in LABELS),
                  "mismatch", "claimed_label", "severity", "evidence"]


def predictions_frame(preds: list[Prediction]) -> pd.DataFrame:
    """One row per prediction, the columns the pyfunc returns (evidence as JSON text so every
    column is a plain type Spark and the REST server can carry)."""
    rows = []
    for p in preds:
        rows.append({
            "label": p.label,
            "confidence": float(p.confidence),
            "needs_review": bool(p.needs_review),
            **{f"prob_{lab}": float(p.probabilities[lab]) for lab in LABELS},
            "mismatch": p.mismatch.status,
            "claimed_label": p.mismatch.claimed_label or "",  # "" not None: NaN is not JSON
            "severity": p.mismatch.severity,
            "evidence": json.dumps([{"term": e.term, "weight": e.weight, "start": e.start, "end": e.end}
                                    for e in p.evidence], ensure_ascii=False),
        })
    return pd.DataFrame(rows, columns=OUTPUT_COLUMNS)


def _inputs(model_input: Any) -> tuple[list[str], list[str | None], list[str | None] | None]:
    """Texts, claimed reasons and products from what callers pass: a DataFrame
    (text[, claimed_reason][, product]), a list of texts, or a Series."""
    if isinstance(model_input, pd.DataFrame):
        if "text" in model_input.columns:
            texts = model_input["text"]
        elif len(model_input.columns) == 1:  # an unnamed single column is the texts
            texts = model_input.iloc[:, 0]
        else:  # never guess: the first column might be the claimed reason
            raise ValueError(f"the input needs a 'text' column; it has {list(model_input.columns)}")
        claimed = model_input["claimed_reason"] if "claimed_reason" in model_input.columns else None
        products = _optional(model_input["product"]) if "product" in model_input.columns else None
    else:
        texts, claimed, products = pd.Series(list(model_input)), None, None
    text_list = ["" if _missing(v) else str(v) for v in texts]
    return text_list, _optional(claimed) if claimed is not None else [None] * len(text_list), products


def _optional(column: pd.Series) -> list[str | None]:
    return [None if _missing(v) else str(v) for v in column]


def _missing(value: Any) -> bool:
    """None, NaN, pd.NA and NaT alike (pd.isna of a scalar; lists and arrays are never missing)."""
    return value is None or (np.ndim(value) == 0 and bool(pd.isna(value)))


class TicketNlpModel(mlflow.pyfunc.PythonModel):
    """Wraps the model directory ``train`` wrote; predicts exactly as ``Classifier.predict``."""

    def load_context(self, context) -> None:
        reasons = context.artifacts.get("reasons")
        self.clf = Classifier.load(context.artifacts[PYFUNC_ARTIFACT],
                                   reasons=ReasonMap.load(reasons) if reasons else None)

    def predict(self, context, model_input, params: dict[str, Any] | None = None) -> pd.DataFrame:
        texts, claimed, products = _inputs(model_input)
        explain = bool((params or {}).get("explain", True))
        return predictions_frame(self.clf.predict(texts, claimed, products, explain=explain))


def signature():
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    inputs = Schema([ColSpec("string", "text"), ColSpec("string", "claimed_reason", required=False),
                     ColSpec("string", "product", required=False)])
    outputs = Schema([ColSpec("string", "label"), ColSpec("double", "confidence"), ColSpec("boolean", "needs_review"),
                      *(ColSpec("double", f"prob_{lab}") for lab in LABELS),
                      ColSpec("string", "mismatch"), ColSpec("string", "claimed_label"),
                      ColSpec("string", "severity"), ColSpec("string", "evidence")])
    return ModelSignature(inputs, outputs, ParamSchema([ParamSpec("explain", "boolean", True)]))


INPUT_EXAMPLE = pd.DataFrame({"text": ["收到就发现有瑕疵，袖口开线", "买大了，想换小一码"],
                              "claimed_reason": ["七天无理由退货", "尺码不合适"],
                              "product": ["针织开衫", "运动鞋"]})
