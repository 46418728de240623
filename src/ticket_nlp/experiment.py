"""Experiments as files: a YAML config names the pipeline params, the threshold targets, the data
and its label mapping, so a run can be repeated and two runs compared by what differs in them.

    name: words_only
    params: {use_chars: false}            # any key of model.DEFAULT_PARAMS
    thresholds: {review_precision: 0.95, mismatch_precision: 0.95}
    compare: false                        # the variant comparison of `train`
    data: {paths: [export.xlsx], text_col: 买家留言, label_col: 人工标注, label_map: {质量: quality_defect}}
    grid: {C: [0.5, 1.0]}                 # only `ticket-nlp tune` reads it

Unknown keys are errors, not silently ignored: a typo in a param would otherwise train the default
model under the experiment's name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ticket_nlp.model import DEFAULT_PARAMS

TOP_KEYS = {"name", "description", "params", "thresholds", "compare", "data", "grid"}
THRESHOLD_KEYS = {"review_precision", "mismatch_precision"}
DATA_KEYS = {"paths", "text_col", "label_col", "claimed_col", "label_map"}
DEFAULT_THRESHOLDS = {"review_precision": 0.95, "mismatch_precision": 0.95}


class ConfigError(ValueError):
    """The config file cannot be used; the message names the file and the key."""


@dataclass
class DataSpec:
    paths: list[Path] = field(default_factory=list)
    text_col: str | None = None
    label_col: str | None = None
    claimed_col: str | None = None
    label_map: dict[str, str] = field(default_factory=dict)


@dataclass
class ExperimentConfig:
    name: str = "default"
    description: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    compare: bool | None = None
    data: DataSpec = field(default_factory=DataSpec)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    source: str = ""

    def flat(self) -> dict[str, Any]:
        """Every setting as one flat dict (MLflow params): the full pipeline params, not only overrides."""
        full = {**DEFAULT_PARAMS, **self.params}
        out: dict[str, Any] = {k: list(v) if isinstance(v, tuple) else v for k, v in full.items()}
        out.update(self.thresholds)
        out["config_name"] = self.name
        out["config_file"] = self.source or "(none)"
        return out


def param_value(value: Any) -> Any:
    """An MLflow param value: lists, tuples and dicts as JSON text (MLflow stores params as strings)."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, list | tuple | dict) else value


def _check_keys(found: dict[str, Any], allowed: set[str], where: str, source: str) -> None:
    unknown = sorted(set(found) - allowed)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown} in {where}; allowed: {sorted(allowed)}")


def _check_params(params: dict[str, Any], where: str, source: str) -> None:
    _check_keys(params, set(DEFAULT_PARAMS), where, source)


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate a config file; relative data paths are taken from the working directory."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as err:
        raise ConfigError(f"no config file at {path}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: want a mapping at the top level")
    source = str(path)
    _check_keys(raw, TOP_KEYS, "the top level", source)
    params = dict(raw.get("params") or {})
    _check_params(params, "params", source)
    thresholds = {**DEFAULT_THRESHOLDS, **(raw.get("thresholds") or {})}
    _check_keys(thresholds, THRESHOLD_KEYS, "thresholds", source)
    for key, value in thresholds.items():
        if not isinstance(value, int | float) or not 0 < value <= 1:
            raise ConfigError(f"{source}: thresholds.{key} must be a precision in (0, 1], got {value!r}")
    data = dict(raw.get("data") or {})
    _check_keys(data, DATA_KEYS, "data", source)
    paths = data.get("paths") or []
    grid = dict(raw.get("grid") or {})
    _check_params(grid, "grid", source)
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{source}: grid.{key} must be a non-empty list")
    compare = raw.get("compare")
    if compare is not None and not isinstance(compare, bool):
        raise ConfigError(f"{source}: compare must be true or false")
    return ExperimentConfig(
        name=str(raw.get("name") or path.stem),
        description=str(raw.get("description") or ""),
        params=params,
        thresholds={k: float(v) for k, v in thresholds.items()},
        compare=compare,
        data=DataSpec(paths=[Path(p) for p in ([paths] if isinstance(paths, str) else paths)],
                      text_col=data.get("text_col"), label_col=data.get("label_col"),
                      claimed_col=data.get("claimed_col"),
                      label_map={str(k): str(v) for k, v in (data.get("label_map") or {}).items()}),
        grid=grid,
        source=source,
    )
