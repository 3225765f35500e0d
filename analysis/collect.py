"""Run folders -> tidy pandas tables (runs, learning curves, gate activity, lesions).

Reads only the run record (summary.json, metrics.jsonl, curve.jsonl) through
highway_study.record, what each model is through highway_study.catalog, and the
step-resolution rules through highway_study.convergence; none imports TensorFlow. Folders that
are not finished runs of this study (no summary yet, corrupt JSON, another schema) are
collected in `Collection.skipped` with the reason, so the caller can name them all in one
warning.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import sanitize
from analysis.sanitize import as_text
from highway_study import catalog, convergence, record

# Always in the runs table, whether or not they vary across runs.
KEY_COLUMNS = ["model", "data", "depth", "carry_bias", "seed"]
RESULT_COLUMNS = [
    "status", "test_accuracy", "best_val_accuracy", "final_val_accuracy",
    "epochs_to_threshold", "steps_to_threshold", "epochs_done", "effective_depth",
    "params", "wall_seconds",
    # step resolution (curve.jsonl; NaN for runs recorded without it)
    "curve_steps_to_threshold", "curve_area", "stalled", "gate_shift", "curve_last_step",
    "curve_eval_every",
]
# Config keys that name the same idea as a key column, or that only label the run.
_ALIASES = {"model.name": "model", "data.name": "data"}
_MARKERS = (record.SUMMARY_FILE, record.METRICS_FILE, ".hydra")
_SKIP_WALK = {".hydra", "tensorboard", "figures", "__pycache__"}
# Classes of the data sets whose count is not data.num_classes: tent is binary.
_CLASSES = {"tent": 2}


class AnalysisError(Exception):
    """Input the analysis cannot use; the message is one sentence for the user."""


@dataclass
class Collection:
    """Everything read from a set of run folders, as tidy tables."""

    runs: pd.DataFrame
    curves: pd.DataFrame  # run, epoch, step, val_accuracy, ... (one row per finished epoch)
    points: pd.DataFrame  # run, step, val_accuracy, ... (one row per point of curve.jsonl)
    gate_points: pd.DataFrame  # run, step, layer, gate_activity (every point, gated runs)
    gates: pd.DataFrame  # run, layer, gate_activity (final, per highway layer)
    lesions: pd.DataFrame  # run, layer, val_accuracy, accuracy_drop
    swept: list[str] = field(default_factory=list)  # config keys that vary across runs
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (folder, why)
    selection: list[str] = field(default_factory=list)  # "KEY=VALUE" the runs were picked by
    threshold: float = 0.9
    gate_threshold: float = 0.1
    budgets: list[int] = field(default_factory=list)  # step budgets of accuracy_after_<b>
    gate_run: str | None = None  # the run whose gate dynamics are drawn


def find_run_dirs(folder: Path) -> list[Path]:
    """Every folder under `folder` (itself included) that looks like a run folder."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_WALK)
        if any(os.path.exists(os.path.join(root, name)) for name in _MARKERS):
            found.append(Path(root))
    return found


def read_run(run_dir: Path) -> tuple[record.Summary | None, str | None]:
    """(summary, None) for a usable run record, else (None, why it is skipped)."""
    try:
        summary = record.read_summary(run_dir)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return None, "corrupt JSON in summary.json"
    except record.RecordError as error:
        return None, str(error)
    except OSError as error:
        return None, f"unreadable summary.json ({error.strerror})"
    if summary is None:
        return None, "no summary.json (unfinished or killed run)"
    try:
        return sanitize.summary(summary), None
    except sanitize.BadRecord as error:
        return None, str(error)


def read_rows(run_dir: Path) -> tuple[tuple[list, list] | None, str | None]:
    """((metrics rows, curve points), None), or (None, why the run is skipped)."""
    try:
        return (sanitize.rows(run_dir / record.METRICS_FILE),
                sanitize.rows(run_dir / record.CURVE_FILE)), None
    except sanitize.BadRecord as error:
        return None, str(error)


def collect(folders, threshold: float = 0.9, gate_threshold: float = 0.1) -> Collection:
    """Read every run under `folders` into one Collection (raises AnalysisError if none)."""
    rows, curves, points, gate_points, gates, lesions, skipped = [], [], [], [], [], [], []
    seen = set()
    folders = [Path(f) for f in folders]
    for folder in folders:
        if not folder.is_dir():
            raise AnalysisError(f"Folder {str(folder)!r} does not exist or is not a folder.")
        for run_dir in find_run_dirs(folder):
            if run_dir.resolve() in seen:
                continue
            seen.add(run_dir.resolve())
            name = _run_name(folder, run_dir, prefix=len(folders) > 1)
            summary, why = read_run(run_dir)
            if summary is not None:
                found, why = read_rows(run_dir)
            if summary is None or found is None:
                skipped.append((str(run_dir), why))
                continue
            metrics, curve = found
            row = _run_row(name, run_dir, summary, metrics, threshold, gate_threshold)
            row.update(curve_columns(curve, summary.config, threshold))
            rows.append(row)
            curves += [{"run": name, **_scalars(epoch)} for epoch in metrics]
            points += [{"run": name, **_scalars(point)} for point in curve]
            gate_points += [{"run": name, "step": point.get("step"), "layer": i,
                             "gate_activity": _num(g)}
                            for point in curve for i, g in enumerate(point.get("gate_activity")
                                                                     or [])]
            gates += [{"run": name, "layer": i, "gate_activity": g}
                      for i, g in enumerate(summary.gate_activity)]
            reference = summary.final_val_accuracy
            lesions += [_lesion_row(name, item, reference) for item in summary.lesion or []]
    if not rows:
        where = ", ".join(str(f) for f in folders)
        detail = f" ({len(skipped)} unusable folders skipped)" if skipped else ""
        raise AnalysisError(f"No finished highway_study runs found in {where}{detail}.")
    runs, swept = _runs_table(rows)
    return Collection(
        runs=runs,
        curves=_frame(curves, ["run", "epoch", "step", "val_accuracy", "train_loss"]),
        points=_frame(points, ["run", "step", "val_accuracy", "train_loss"]),
        gate_points=_frame(gate_points, ["run", "step", "layer", "gate_activity"]),
        gates=_frame(gates, ["run", "layer", "gate_activity"]),
        lesions=_frame(lesions, ["run", "layer", "val_accuracy", "accuracy_drop"]),
        swept=swept, skipped=skipped, threshold=threshold, gate_threshold=gate_threshold,
    )


def epochs_to_threshold(metrics: list[dict], threshold: float) -> tuple[float, float]:
    """(epoch, step) of the first epoch whose val_accuracy reaches `threshold`; NaN if never."""
    epoch, step = record.first_reaching(metrics, threshold)
    return _num(epoch), _num(step)


def curve_columns(curve: list[dict], config: dict, threshold: float) -> dict:
    """The runs table's step-resolution columns, recomputed from curve.jsonl by the rules of
    highway_study.convergence (NaN without a curve)."""
    if not curve:
        return {"curve_steps_to_threshold": np.nan, "curve_area": np.nan, "stalled": np.nan,
                "gate_shift": np.nan, "curve_last_step": np.nan, "curve_eval_every": np.nan}
    data = config.get("data")
    stalled = convergence.stalled(curve, chance=chance(data if isinstance(data, dict) else {}))
    return {
        "curve_steps_to_threshold": _num(convergence.steps_to(curve, threshold)),
        "curve_area": _num(convergence.curve_area(curve)),
        "stalled": np.nan if stalled is None else stalled,
        "gate_shift": _num(convergence.gate_shift(curve)),
        "curve_last_step": _num(max((p["step"] for p in curve if p.get("step") is not None),
                                    default=None)),
        "curve_eval_every": sanitize.loose(config.get("eval_every")),
    }


def chance(data: dict) -> float:
    """Chance accuracy, 1 / classes, of a run's data config. A generated task with a fixed
    number of classes says so in _CLASSES: its config still carries the schema's
    data.num_classes (10, read by `synthetic` only), which would put tent's chance at 10%."""
    name, classes = data.get("name"), data.get("num_classes")
    fixed = _CLASSES.get(name) if isinstance(name, str) else None
    if fixed is None and not (isinstance(classes, int) and not isinstance(classes, bool)
                              and classes >= 2):
        classes = 10  # missing or not a count of classes
    return 1 / (fixed or classes)


def effective_depth(gate_activity, gate_threshold: float) -> float:
    """Layers whose mean transform-gate activity exceeds `gate_threshold` (NaN without gates)."""
    if not gate_activity:
        return np.nan
    return float(sum(1 for g in gate_activity if g is not None and g > gate_threshold))


def _run_row(name, run_dir, summary: record.Summary, metrics, threshold, gate_threshold) -> dict:
    epoch, step = epochs_to_threshold(metrics, threshold)
    if not metrics and summary.threshold == threshold:
        epoch, step = _num(summary.epochs_to_threshold), _num(summary.steps_to_threshold)
    return {
        "run": name,
        "path": str(run_dir),
        "config": summary.config,
        "status": summary.status,
        "error": summary.error,
        "test_accuracy": _num(summary.test_accuracy),
        "best_val_accuracy": _num(summary.best_val_accuracy),
        "final_val_accuracy": _num(summary.final_val_accuracy),
        "epochs_to_threshold": epoch,
        "steps_to_threshold": step,
        "epochs_done": len(metrics) if metrics else _num(summary.epochs),
        "effective_depth": effective_depth(summary.gate_activity, gate_threshold),
        "params": _num(summary.params),
        "wall_seconds": _num(summary.wall_seconds),
    }


def _runs_table(rows: list[dict]) -> tuple[pd.DataFrame, list[str]]:
    """One row per run: key columns, every config key that varies, then the results."""
    configs = [_aliased(record.flatten_config(row.pop("config"))) for row in rows]
    flat = pd.DataFrame(configs, index=range(len(configs)))
    for column in KEY_COLUMNS:
        if column not in flat:
            flat[column] = np.nan
    swept = [key for key in _varying(configs) if key not in KEY_COLUMNS]
    # A config key named like a column of the results (a config with its own `status`)
    # keeps its value under config.<key>.
    taken = {"run", "family", *RESULT_COLUMNS, "error", "path"}
    flat = flat.rename(columns={key: f"config.{key}" for key in swept if key in taken})
    swept = [f"config.{key}" if key in taken else key for key in swept]
    for column in swept:
        flat[column] = flat[column].map(_hashable)
    results = pd.DataFrame(rows)
    table = pd.concat([results[["run"]], flat[KEY_COLUMNS + swept],
                       results[RESULT_COLUMNS + ["error", "path"]]], axis=1)
    for column in ("model", "data"):  # names; a record without one says none
        table[column] = table[column].map(as_text).astype(object)
    table.insert(table.columns.get_loc("model") + 1, "family",
                 table["model"].map(catalog.family))
    table["depth"] = _numbers(table["depth"], whole=True).astype("Int64")
    table["carry_bias"] = _numbers(table["carry_bias"]).astype(float)
    table["seed"] = _numbers(table["seed"], whole=True).astype("Int64")
    table = table.sort_values(["model", "depth", "carry_bias", "seed", "run"], kind="stable")
    return table.reset_index(drop=True), swept


def _aliased(flat: dict) -> dict:
    """A flattened config with model.name and data.name under model and data (a record
    whose model or data is a bare value keeps it there)."""
    flat = dict(flat)
    for key, alias in _ALIASES.items():
        if key in flat:
            flat[alias] = flat.pop(key)
    return flat


def _hashable(value):
    """Lists and dicts (a swept list-valued key) as their JSON text, so the column can be
    grouped, compared and sorted; everything else as it is."""
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    return value


def _numbers(column: pd.Series, whole: bool = False) -> pd.Series:
    """A key column as finite floats, NaN for anything else (a string that is no number, a
    list, a bool, infinity; with `whole`, a fraction or a number too large for an int)."""
    def one(value):
        number = sanitize.loose(value)
        if whole and not (np.isnan(number) or (number.is_integer() and abs(number) <= 2 ** 53)):
            return np.nan
        return number

    return column.map(one).astype(float)


def _varying(configs: list[dict]) -> list[str]:
    """Keys with more than one value among the runs that have them (a key that only newer
    runs have, with one value, is a grown schema, not a sweep)."""
    values: dict[str, set] = {}
    for config in configs:
        for key, value in config.items():
            values.setdefault(key, set()).add(json.dumps(value, sort_keys=True))
    return [key for key, seen in values.items() if len(seen) > 1]


def _lesion_row(name, item, reference) -> dict:
    accuracy = _num(item.get("val_accuracy"))
    drop = reference - accuracy if reference is not None else np.nan
    return {"run": name, "layer": item.get("layer"), "val_accuracy": accuracy,
            "accuracy_drop": drop}


def _scalars(row: dict) -> dict:
    """The epoch's scalar metrics (the per-layer gate list stays in the gates table)."""
    return {k: _num(v) if isinstance(v, (int, float)) or v is None else v
            for k, v in row.items() if not isinstance(v, (list, dict))}


def _run_name(root: Path, run_dir: Path, prefix: bool) -> str:
    """The run's folder relative to the folder given (prefixed by it when several are given)."""
    relative = run_dir.relative_to(root)
    name = str(relative) if str(relative) != "." else run_dir.name
    return f"{root.name}/{name}" if prefix and str(relative) != "." else name


def _frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    """The rows as a table that has at least `columns` (NaN where no row has one)."""
    frame = pd.DataFrame(rows) if rows else pd.DataFrame(columns=columns)
    for column in columns:
        if column not in frame:
            frame[column] = np.nan
    return frame


def _num(value) -> float:
    return np.nan if value is None else float(value)
