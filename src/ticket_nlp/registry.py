"""Promotion: register a run's model as ``ticket-nlp`` and move the ``champion`` alias to it only when
it is at least as good as the current champion, measured now, on the same evaluation sets.

The deciding metric is macro-F1, and the candidate must reach the champion's on *every* set (the
corpus test split and each extra set, e.g. real buyer texts): a gain on written tickets that costs
real-text accuracy is not a promotion. Other figures (mismatch P/R, coverage, calibration error)
are printed beside it for the person deciding, not used to decide. ``force`` moves the alias
anyway and tags the version ``promoted_by_force=true`` so the registry says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ticket_nlp.config import CHAMPION_ALIAS, REGISTERED_MODEL, RUN_MODEL_NAME
from ticket_nlp.data import LabelledSet
from ticket_nlp.evaluate import evaluate
from ticket_nlp.model import Classifier

DECIDING_METRIC = "macro_f1"
SHOWN_METRICS = ("macro_f1", "mismatch_precision", "mismatch_recall", "coverage", "calibration_error")


@dataclass
class Promotion:
    run_id: str
    version: str
    promoted: bool
    forced: bool
    reason: str
    champion_version: str | None = None
    # one row per (set, metric): {"set", "metric", "champion", "candidate", "delta"}
    table: list[dict[str, Any]] = field(default_factory=list)


def _figures(report: dict[str, Any]) -> dict[str, float]:
    out = {k: report[k] for k in ("macro_f1", "coverage", "calibration_error")}
    if "mismatch" in report:
        out["mismatch_precision"] = report["mismatch"]["precision"]
        out["mismatch_recall"] = report["mismatch"]["recall"]
    return out


def _champion(client, name: str, alias: str):
    """The model version holding the alias, or None when there is no registered model or alias yet."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as err:  # only "no such model/alias" means no champion; anything else
        if err.error_code == "RESOURCE_DOES_NOT_EXIST":  # (server down, no permission) must stop here
            return None
        raise


def _version_for_run(client, name: str, run_id: str) -> str:
    """Register the run's model, or reuse the version already registered from it."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        existing = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
    except MlflowException:
        existing = []
    if existing:
        return str(max(int(v.version) for v in existing))
    # the logged model's own URI (models:/m-…) when train recorded it; runs:/ resolves to it too
    uri = client.get_run(run_id).data.tags.get("model_uri") or f"runs:/{run_id}/{RUN_MODEL_NAME}"
    return str(mlflow.register_model(uri, name).version)


def promote(run_id: str, eval_sets: dict[str, LabelledSet], force: bool = False,
            name: str = REGISTERED_MODEL, alias: str = CHAMPION_ALIAS) -> Promotion:
    """Register ``run_id``'s model and move ``alias`` to it when it is at least as good (see module doc)."""
    from mlflow import MlflowClient

    from ticket_nlp.tracking import setup

    if not eval_sets:
        raise ValueError("promotion needs at least one evaluation set")
    setup()
    client = MlflowClient()
    client.get_run(run_id)  # a clear MlflowException for an unknown run id
    candidate = Classifier.load(f"runs:/{run_id}/{RUN_MODEL_NAME}")
    champion_mv = _champion(client, name, alias)
    champion_version = str(champion_mv.version) if champion_mv else None
    # by version, not alias: the alias could move between the two calls
    champion = Classifier.load(f"models:/{name}/{champion_version}") if champion_mv else None

    table: list[dict[str, Any]] = []
    better_everywhere = True
    for set_name, data in eval_sets.items():
        cand = _figures(evaluate(candidate, data))
        champ = _figures(evaluate(champion, data)) if champion else {}
        for metric in SHOWN_METRICS:
            if metric not in cand:
                continue
            old = champ.get(metric)
            table.append({"set": set_name, "metric": metric, "champion": old, "candidate": cand[metric],
                          "delta": None if old is None else cand[metric] - old})
        if champion and cand[DECIDING_METRIC] < champ[DECIDING_METRIC]:
            better_everywhere = False

    version = _version_for_run(client, name, run_id)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for row in table:
        if row["metric"] == DECIDING_METRIC:
            client.set_model_version_tag(name, version, f"eval_{row['set']}_{DECIDING_METRIC}",
                                         f"{row['candidate']:.4f}")
    if champion_mv is not None and champion_mv.run_id == run_id:
        return Promotion(run_id, version, True, False, f"version {version} already holds @{alias}",
                         champion_version, table)
    if champion is None:
        reason = f"no @{alias} yet: version {version} becomes the first"
        promoted = True
    elif better_everywhere:
        reason = (f"{DECIDING_METRIC} at least the champion's (version {champion_version}) on every set: "
                  + ", ".join(eval_sets))
        promoted = True
    else:
        reason = (f"{DECIDING_METRIC} below the champion's (version {champion_version}) on "
                  + ", ".join(r["set"] for r in table
                              if r["metric"] == DECIDING_METRIC and r["delta"] is not None and r["delta"] < 0))
        promoted = False
    forced = force and not promoted
    if promoted or forced:
        client.set_registered_model_alias(name, alias, version)
        client.set_model_version_tag(name, version, "promoted_at", now)
        if forced:
            client.set_model_version_tag(name, version, "promoted_by_force", "true")
            reason = f"forced: {reason}"
    else:
        client.set_model_version_tag(name, version, "promotion_refused", reason[:500])
    return Promotion(run_id, version, promoted or forced, forced, reason,
                     champion_version, table)
