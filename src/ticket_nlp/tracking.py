"""MLflow: every training run recorded (config, data, metrics, figures, errors) and the model
logged as a pyfunc, so `mlflow ui` compares runs and `mlflow models serve` / `spark_udf` use the
same ``Classifier.predict`` as the CLI.

mlflow is imported inside functions: the CLI's other verbs and plain model loading should not pay
for it.
"""

from __future__ import annotations

import json
import tempfile
import time
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ticket_nlp.config import LABELS, RUN_MODEL_NAME, experiment_name, tracking_uri
from ticket_nlp.data import LabelledSet
from ticket_nlp.evaluate import evaluate
from ticket_nlp.experiment import param_value
from ticket_nlp.model import PYFUNC_ARTIFACT, Classifier, Prediction
from ticket_nlp.reasons import ReasonMap
from ticket_nlp.text import mask_pii

if TYPE_CHECKING:
    from ticket_nlp.experiment import ExperimentConfig

# What the pyfunc needs at serving time, pinned to what trained it (scikit-learn pickles are
# version-bound). ticket-nlp itself must be installed where the model is served (see README).
RUNTIME_PACKAGES = ("scikit-learn", "numpy", "scipy", "joblib", "rjieba", "opencc", "pyyaml", "pandas", "mlflow")


def setup(experiment: str | None = None) -> None:
    """Point MLflow at the configured store and experiment."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    mlflow.set_experiment(experiment or experiment_name())


def _requirements() -> list[str]:
    out = []
    for name in RUNTIME_PACKAGES:
        try:
            out.append(f"{name}=={importlib_metadata.version(name)}")
        except importlib_metadata.PackageNotFoundError:
            out.append(name)
    return out


def log_pyfunc(model_path: Path, reasons: ReasonMap) -> str:
    """Log the model directory as a pyfunc model of the active run; returns runs:/<id>/model."""
    import mlflow

    from ticket_nlp.pyfunc import INPUT_EXAMPLE, TicketNlpModel, signature

    artifacts = {PYFUNC_ARTIFACT: str(model_path)}
    if reasons.source and Path(reasons.source).is_file():
        artifacts["reasons"] = reasons.source
    info = mlflow.pyfunc.log_model(name=RUN_MODEL_NAME, python_model=TicketNlpModel(), artifacts=artifacts,
                            signature=signature(), input_example=INPUT_EXAMPLE, pip_requirements=_requirements())
    mlflow.set_tag("model_uri", info.model_uri)
    return f"runs:/{mlflow.active_run().info.run_id}/{RUN_MODEL_NAME}"


# --- figures and tables --------------------------------------------------------------------------
def confusion_figure(confusion: list[list[int]], title: str):
    from matplotlib.figure import Figure  # no pyplot: no global backend switch, nothing to close

    cm = np.array(confusion)
    fig = Figure(figsize=(6, 5))
    ax = fig.subplots()
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(LABELS)), LABELS, rotation=35, ha="right")
    ax.set_yticks(range(len(LABELS)), LABELS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(LABELS)):
        for j in range(len(LABELS)):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def reliability_figure(confidence: np.ndarray, correct: np.ndarray, title: str, bins: int = 10):
    """Accuracy against confidence per bin: the bars sit on the diagonal when calibrated."""
    from matplotlib.figure import Figure

    edges = np.linspace(0, 1, bins + 1)
    centers, accuracy, counts = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            centers.append((lo + hi) / 2)
            accuracy.append(correct[inside].mean())
            counts.append(int(inside.sum()))
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], "--", color="grey", label="calibrated")
    ax.bar(centers, accuracy, width=1 / bins * 0.9, alpha=0.7, label="accuracy in bin")
    for x, y, n in zip(centers, accuracy, counts, strict=True):
        ax.text(x, y + 0.01, str(n), ha="center", fontsize=7)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.08)
    ax.legend(loc="upper left")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def per_class_table(report: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame([{"label": lab, **v} for lab, v in report["per_class"].items()])


def misclassified_frame(data: LabelledSet, preds: list[Prediction]) -> pd.DataFrame:
    rows = []
    for i, p in enumerate(preds):
        if p.label != data.labels[i]:
            rows.append({"text": mask_pii(data.texts[i], addresses=True), "label": data.labels[i], "predicted": p.label,
                         "confidence": p.confidence, "needs_review": p.needs_review,
                         "claimed_reason": data.claimed[i] if data.claimed else None,
                         "mismatch": p.mismatch.status,
                         **{k: v[i] for k, v in data.extra.items() if k in ("product_category", "ticket_id")}})
    return pd.DataFrame(rows)


def metrics_of(prefix: str, report: dict[str, Any]) -> dict[str, float]:
    """Flat MLflow metrics of one evaluation report."""
    out = {f"{prefix}_macro_f1": report["macro_f1"], f"{prefix}_accuracy": report["accuracy"],
           f"{prefix}_coverage": report["coverage"], f"{prefix}_calibration_error": report["calibration_error"],
           f"{prefix}_accuracy_when_confident": report["accuracy_when_confident"]}
    for lab, v in report["per_class"].items():
        for k in ("precision", "recall", "f1"):
            out[f"{prefix}_{k}_{lab}"] = v[k]
    if "mismatch" in report:
        out[f"{prefix}_mismatch_precision"] = report["mismatch"]["precision"]
        out[f"{prefix}_mismatch_recall"] = report["mismatch"]["recall"]
    return {k: float(v) for k, v in out.items()}


def dataset_frame(data: LabelledSet) -> pd.DataFrame:
    frame = pd.DataFrame({"text": data.texts, "label": data.labels,
                          "claimed_reason": data.claimed or [None] * len(data),
                          "split": data.splits or [""] * len(data)})
    for k, v in data.extra.items():
        if k == "product_category":
            frame[k] = v
    return frame


def _log_dataset(data: LabelledSet) -> None:
    import mlflow

    frame = dataset_frame(data)
    name = " + ".join(Path(s).name for s in data.source.split(" + ")) or "data"
    try:
        dataset = mlflow.data.from_pandas(frame, source=data.source, targets="label", name=name,
                                          digest=data.sha256[:16])
    except Exception:  # a source MLflow cannot resolve (several files joined): keep the hash, say where
        from mlflow.data.code_dataset_source import CodeDatasetSource

        dataset = mlflow.data.from_pandas(frame, source=CodeDatasetSource({"files": data.source}),
                                          targets="label", name=name, digest=data.sha256[:16])
    mlflow.log_input(dataset, context="training")


# --- the run -------------------------------------------------------------------------------------
def log_training_run(clf: Classifier, data: LabelledSet, model_path: Path, config: ExperimentConfig,
                     eval_sets: dict[str, LabelledSet] | None = None, run_name: str | None = None) -> str:
    """Record one trained model as an MLflow run; returns the run id.

    ``data`` is what it was trained on (with splits); ``eval_sets`` are extra labelled sets
    (e.g. real buyer texts) measured and logged as metrics only — their rows are never logged.
    """
    import mlflow

    from ticket_nlp.train import ensure_splits

    setup()
    data = ensure_splits(data)
    meta = clf.metadata
    with mlflow.start_run(run_name=run_name or config.name) as run:
        params = config.flat()
        params.update(meta["params"])  # what was fitted (a compare may change it)
        params["variant"] = meta.get("variant", "")
        if meta.get("self_training"):  # which unlabelled tickets, and how many joined (rows never logged)
            st = meta["self_training"]
            params.update({"self_training_source": st["source"], "self_training_sha256": st["sha256"],
                           "self_training_added": st["added"], "self_training_confidence": st["confidence"],
                           "self_training_weight": st["weight"]})
        mlflow.log_params({k: param_value(v) for k, v in params.items()})
        mlflow.set_tags({"model_version": clf.version, "data_sha256": data.sha256, "data_source": data.source,
                         "config_name": config.name, "description": config.description[:500]})
        _log_dataset(data)
        metrics: dict[str, float] = {"train_seconds": float(meta.get("train_seconds", 0.0)),
                                     "rows_train": meta["data"]["train"], "rows_valid": meta["data"]["valid"],
                                     "mismatch_threshold": clf.mismatch_threshold,
                                     "claim_agreement": clf.claim_agreement}
        reports: dict[str, Any] = {}
        valid = data.split("valid")
        claimed = valid.claimed or [None] * len(valid)
        start = time.perf_counter()
        valid_preds = clf.predict(valid.texts, claimed, valid.products, explain=True)
        metrics["throughput_texts_per_s"] = len(valid) / max(time.perf_counter() - start, 1e-9)
        sets = {"valid": valid, "test": data.split("test"), **(eval_sets or {})}
        for name, part in sets.items():
            if not len(part):
                continue
            reports[name] = evaluate(clf, part)
            metrics.update(metrics_of(name, reports[name]))
        mlflow.log_metrics(metrics)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            for name, report in reports.items():
                per_class_table(report).to_csv(out / f"per_class_{name}.csv", index=False)
                mlflow.log_figure(confusion_figure(report["confusion"], f"confusion on {name}"),
                                  f"figures/confusion_{name}.png")
            conf = np.array([p.confidence for p in valid_preds])
            correct = np.array([p.label for p in valid_preds]) == np.array(valid.labels)
            mlflow.log_figure(reliability_figure(conf, correct, "reliability on valid"), "figures/reliability_valid.png")
            (out / "evaluation.json").write_text(json.dumps(reports, ensure_ascii=False, indent=2), encoding="utf-8")
            misclassified_frame(valid, valid_preds).to_csv(out / "misclassified_valid.csv", index=False,
                                                           encoding="utf-8")
            for f in sorted(out.iterdir()):
                mlflow.log_artifact(str(f), "evaluation")
        if clf.reasons.source and Path(clf.reasons.source).is_file():
            mlflow.log_artifact(clf.reasons.source, "claimed_reasons")
        mlflow.log_dict(meta, "metadata.json")
        log_pyfunc(Path(model_path), clf.reasons)
        return run.info.run_id
