"""Search: every point of a config's ``grid`` (scikit-learn ``ParameterGrid``) fitted on ``train``
and scored on ``valid``, each a nested MLflow run under one parent that records the best.

The fixed ``valid`` split, not cross-validation, is the yardstick, as in ``train``'s variant
comparison: it keeps a search to one fit per point on two cores, and calibration already
cross-validates inside each fit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sklearn.model_selection import ParameterGrid

from ticket_nlp.data import LabelledSet
from ticket_nlp.evaluate import label_metrics
from ticket_nlp.experiment import ExperimentConfig, param_value
from ticket_nlp.model import DEFAULT_PARAMS
from ticket_nlp.train import ensure_splits, fit_variant


@dataclass
class TuneResult:
    parent_run_id: str | None
    rows: list[dict[str, Any]]  # {"params", "valid_macro_f1", "train_seconds", "run_id"}
    best: dict[str, Any]


def tune(data: LabelledSet, config: ExperimentConfig, track: bool = True, log=print) -> TuneResult:
    """Fit and score every grid point; the best is the highest valid macro-F1 (first one on ties)."""
    if not config.grid:
        raise ValueError(f"{config.source or config.name}: no grid to search (add e.g. grid: {{C: [0.5, 1.0]}})")
    data = ensure_splits(data)
    train_set, valid = data.split("train"), data.split("valid")
    points = list(ParameterGrid(config.grid))
    log(f"searching {len(points)} points of {config.name} on valid "
        f"({len(train_set)} train / {len(valid)} valid rows)")
    mlflow = None
    parent = None
    rows: list[dict[str, Any]] = []
    try:  # from the parent run's start: a failure anywhere ends it as FAILED
        if track:
            import mlflow

            from ticket_nlp.tracking import setup

            setup()
            parent = mlflow.start_run(run_name=f"tune {config.name}")
            mlflow.log_params({**{k: param_value(v) for k, v in {**DEFAULT_PARAMS, **config.params}.items()},
                               "grid": json.dumps(config.grid), "config_file": config.source or "(none)",
                               "points": len(points)})
            mlflow.set_tags({"data_sha256": data.sha256, "data_source": data.source, "kind": "tune"})
        for point in points:
            params = {**config.params, **point}
            pipeline, seconds = fit_variant(train_set, params)
            f1 = label_metrics(valid.labels, list(pipeline.predict(valid.texts)))["macro_f1"]
            run_id = None
            if mlflow is not None:
                label = ", ".join(f"{k}={v}" for k, v in point.items())
                with mlflow.start_run(run_name=label, nested=True) as child:
                    mlflow.log_params({**{k: param_value(v) for k, v in {**DEFAULT_PARAMS, **params}.items()}})
                    mlflow.log_metrics({"valid_macro_f1": f1, "train_seconds": seconds})
                    run_id = child.info.run_id
            rows.append({"params": point, "valid_macro_f1": round(f1, 4), "train_seconds": round(seconds, 1),
                         "run_id": run_id})
            log(f"  {point}  valid macro-F1 {f1:.4f}  ({seconds:.1f}s)")
        best = max(rows, key=lambda r: r["valid_macro_f1"])  # max keeps the first of equals
        if mlflow is not None:
            mlflow.log_metric("best_valid_macro_f1", best["valid_macro_f1"])
            mlflow.log_params({f"best_{k}": param_value(v) for k, v in best["params"].items()})
            mlflow.set_tag("best_run_id", best["run_id"])
            mlflow.log_dict({"rows": rows, "best": best}, "tune_results.json")
    except BaseException:
        if mlflow is not None:
            mlflow.end_run(status="FAILED")  # a crashed search is not FINISHED
        raise
    if mlflow is not None:
        mlflow.end_run()
    return TuneResult(parent.info.run_id if parent else None, rows, best)


def best_config_yaml(config: ExperimentConfig, best: dict[str, Any]) -> str:
    """A config file for ``ticket-nlp train --config`` with the best point's params."""
    import yaml

    doc = {"name": f"{config.name}-best", "description": f"best point of {config.source or config.name} on valid",
           "params": {**config.params, **best["params"]}, "thresholds": config.thresholds}
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
