"""Run records as the analysis may trust them: numbers are numbers, or the run is skipped.

summary.json, metrics.jsonl and curve.jsonl are written by training, but a folder analysed
may hold records edited by hand, written by an older or buggy version, or damaged on disk.
The analysis reads what it can: a number written as a string ("0.93") is read as that
number, NaN and infinity as missing (training records them as null), a line of a .jsonl
file that is not one JSON object (half-written, garbage, not UTF-8) is passed over like a
half-written last line. A value that cannot mean what its field means (test_accuracy
"high", a gate list that is a number, a metrics row whose val_accuracy is a list) makes the
whole run unusable: `BadRecord` says, in one sentence, which file, field and value, and the
caller skips the run with that reason, so no number it prints rests on a guess.
"""

from __future__ import annotations

import dataclasses
import json
import math
from numbers import Real
from pathlib import Path

import pandas as pd

from highway_study import record

# summary.json fields that hold a number (or null).
SUMMARY_NUMBERS = (
    "test_loss", "test_accuracy", "best_val_accuracy", "final_val_accuracy", "threshold",
    "epochs_to_threshold", "steps_to_threshold", "epochs", "steps", "params", "wall_seconds",
    "eval_every", "curve_val_examples", "curve_area", "gate_shift", "recording_seconds",
)
# Fields of a metrics.jsonl or curve.jsonl row that hold a number (or null).
ROW_NUMBERS = (
    "epoch", "step", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
    "learning_rate", "seconds", "recording_seconds",
)
_DEFAULTS = {"epochs": 0, "steps": 0}
MISSING = "none"  # how a config value that a run lacks (null, or no key) is shown  # summary fields whose missing value is not None


class BadRecord(ValueError):
    """A run record the analysis cannot use; the message is one sentence (the skip reason)."""


def as_text(value) -> str:
    """A config value as the analysis names it: 'none' for a missing one (None, NaN, pandas'
    NA), whole floats without '.0' (a column with a missing value turns 100 into 100.0)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) \
            or value is getattr(pd, "NA", None):
        return MISSING
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def loose(value) -> float:
    """A config value as a finite float, NaN for anything else (config values are free-form:
    they never make a run unusable)."""
    if isinstance(value, bool) or not isinstance(value, (Real, str)):
        return math.nan
    try:
        found = float(value)
    except (ValueError, OverflowError):
        return math.nan
    return found if math.isfinite(found) else math.nan


def number(value, where: str):
    """`value` as a float (None for null, NaN or infinity); BadRecord for anything else."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadRecord(f"{where} is {_shown(value)}, expected a number")
    try:
        found = float(value)
    except (ValueError, OverflowError):
        raise BadRecord(f"{where} is {_shown(value)}, expected a number") from None
    return found if math.isfinite(found) else None


def numbers(value, where: str) -> list:
    """A list of numbers (each may be None); None reads as []."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRecord(f"{where} is {_shown(value)}, expected a list of numbers")
    return [number(item, f"{where}[{i}]") for i, item in enumerate(value)]


def summary(found: record.Summary) -> record.Summary:
    """The summary with every numeric field a float or None; BadRecord names the first
    field that is not."""
    values = {}
    for name in SUMMARY_NUMBERS:
        value = number(getattr(found, name), f"summary.json's {name}")
        values[name] = _DEFAULTS.get(name) if value is None and name in _DEFAULTS else value
    values["gate_activity"] = numbers(found.gate_activity, "summary.json's gate_activity")
    values["lesion"] = _lesion(found.lesion)
    values["error"] = None if found.error is None else str(found.error)
    stalled = found.stalled
    values["stalled"] = stalled if isinstance(stalled, bool) else None
    return dataclasses.replace(found, **values)


def _lesion(lesion):
    if lesion is None:
        return None
    where = "summary.json's lesion"
    if not isinstance(lesion, list):
        raise BadRecord(f"{where} is {_shown(lesion)}, expected a list of layers")
    items = []
    for i, item in enumerate(lesion):
        if not isinstance(item, dict):
            raise BadRecord(f"{where}[{i}] is {_shown(item)}, expected "
                            '{"layer": ..., "val_accuracy": ...}')
        layer = number(item.get("layer"), f"{where}[{i}].layer")
        if layer is None or not layer.is_integer() or layer < 0:
            raise BadRecord(f"{where}[{i}].layer is {_shown(item.get('layer'))}, expected a "
                            "layer number (0, 1, ...)")
        items.append({**item, "layer": int(layer),
                      "val_accuracy": number(item.get("val_accuracy"),
                                             f"{where}[{i}].val_accuracy")})
    return items


def rows(path: Path) -> list[dict]:
    """The rows of a metrics.jsonl or curve.jsonl ([] without the file): every line that is
    one JSON object, with its numeric fields as floats or None; lines that are not one
    (half-written, garbage, not UTF-8) are passed over. BadRecord for an unreadable file or
    a row whose numeric field holds something else."""
    try:
        if not path.exists():
            return []
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as error:
        raise BadRecord(f"unreadable {path.name} ({error.strerror})") from None
    found = []
    for index, line in enumerate(text.splitlines(), start=1):
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(row, dict):
            found.append(_row(row, f"{path.name} line {index}"))
    return found


def _row(row: dict, where: str) -> dict:
    clean = dict(row)
    for key in ROW_NUMBERS:
        if key in row:
            clean[key] = number(row[key], f"{where}: {key}")
    if "gate_activity" in row:
        clean["gate_activity"] = numbers(row["gate_activity"], f"{where}: gate_activity")
    for key, value in row.items():  # other scalars: numbers as numbers, NaN as missing
        if key not in ROW_NUMBERS and key != "gate_activity" and isinstance(value, float) \
                and not math.isfinite(value):
            clean[key] = None
    return clean


def _shown(value, most: int = 40) -> str:
    """The value as JSON, cut short."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= most else text[:most - 3] + "..."
