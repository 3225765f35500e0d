"""The run record: the one contract between training and analysis.

A run folder holds `metrics.jsonl` (one JSON object per finished epoch, appended and flushed
as the epoch ends), `curve.jsonl` (one JSON object per point of the step-resolution curve,
every `eval_every` optimizer steps, appended and flushed the same way) and `summary.json`
(written once, atomically, when the run ends). A killed run therefore leaves every finished
epoch and point readable and either no summary or a whole one.

`Summary` is the one type of summary.json: training, the runtime's failure and interrupt
records and the analysis all write or read it through this module. It imports neither
TensorFlow nor Hydra, so the analysis can use it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

SCHEMA = 1
METRICS_FILE = "metrics.jsonl"
CURVE_FILE = "curve.jsonl"
SUMMARY_FILE = "summary.json"
STATUSES = ("completed", "diverged", "failed", "interrupted")
FINISHED = ("completed", "diverged")  # results: a rerun does not train them again
# What a sweep may maximise (`optimized_metric` in the config: one name or a list): summary
# fields, and `layers_used` (see USED_GATE).
OBJECTIVES = ("best_val_accuracy", "final_val_accuracy", "test_accuracy", "layers_used")
# The Optuna study attribute naming its objectives in order (written by the search, read by
# the analysis to name each value column).
STUDY_OBJECTIVES_ATTR = "highway_study.objectives"
# The study attribute holding what its search fixed (dotted config key -> value: depth,
# model.name, ...), written by runtime.study_guard, read by the analysis to compare studies.
STUDY_CONFIG_ATTR = "highway_study.fixed_config"


class RecordError(ValueError):
    """A summary.json that is not a readable highway_study run record; one sentence."""


@dataclass
class Summary:
    """What summary.json holds (docs/usage.md, "The run record"). Missing values are None."""

    status: str
    config: dict
    error: str | None = None
    test_loss: float | None = None
    test_accuracy: float | None = None
    best_val_accuracy: float | None = None
    final_val_accuracy: float | None = None
    threshold: float | None = None
    epochs_to_threshold: int | None = None
    steps_to_threshold: int | None = None
    epochs: int = 0
    steps: int = 0
    params: int | None = None
    wall_seconds: float | None = None
    gate_activity: list = field(default_factory=list)
    lesion: list | None = None
    data_source: str | None = None  # where the data came from (MNIST: the folder read)
    # Step resolution (curve.jsonl; rules in highway_study.convergence). None in records
    # written before it, or with eval_every=0.
    eval_every: int | None = None
    curve_val_examples: int | None = None  # validation examples measured at each point
    steps_to: dict | None = None  # {"0.5": step or None, "0.9": ..., "0.95": ...}
    curve_area: float | None = None  # area under validation accuracy over steps, in [0, 1]
    stalled: bool | None = None
    gate_shift: float | None = None  # mean |T(end) - T(start)| over the highway layers
    recording_seconds: float | None = None  # time spent measuring and writing the points
    # What computed the run: {"kernel": "native" | "xla" | "vectorized" | "keras", "why": ...} (None in
    # records written before it was recorded).
    engine: dict | None = None

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data) -> Summary:
        """A Summary from parsed JSON; RecordError when it is not a run record we can read.

        Keys this version does not know are ignored, and keys it lacks take their defaults,
        so records written by earlier and later versions of schema 1 are read alike.
        """
        if not isinstance(data, dict) or "schema" not in data:
            raise RecordError("summary.json is not a highway_study run record (no schema)")
        if data["schema"] != SCHEMA:
            raise RecordError(f"unknown schema {data['schema']!r} (this version reads {SCHEMA})")
        if data.get("status") not in STATUSES or not isinstance(data.get("config"), dict):
            raise RecordError("summary.json lacks a known status or the config")
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known and v is not None}
        return cls(**values)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def layers_used(self) -> int | None:
        """How many highway layers the trained net uses (`layers_used`); None without gates."""
        if not self.gate_activity:
            return None
        return layers_used(self.gate_activity, (self.config or {}).get("carry_bias"))


# A highway layer is "used" when its mean transform-gate value T, measured on held-out
# examples at the end of training, is at least USED_GATE (it then takes at least a tenth of
# its output from its transform H(x) instead of carrying x through) and its gate opened in
# training: T reached twice its start, sigmoid(carry_bias), or one half. Without the second
# rule a net at carry bias -1 or -2, whose gates start at 0.27 or 0.12, would "use" every
# layer whose gate never moved. Derived from gate_activity and the config, so every record
# that has gates (of any version) has it.
USED_GATE = 0.1
USED_OPENING = 2.0  # times the gate's start
USED_HALF = 0.5


def used_floor(carry_bias=None) -> float:
    """The mean gate value from which a layer counts as used, for nets of this carry bias
    (USED_GATE alone when the carry bias is unknown: None, or NaN from a table)."""
    if carry_bias is None or math.isnan(float(carry_bias)):
        return USED_GATE
    start = 1.0 / (1.0 + math.exp(-float(carry_bias)))
    return max(USED_GATE, min(USED_OPENING * start, USED_HALF))


def layers_used(gate_activity, carry_bias=None) -> int:
    """The number of layers whose mean transform-gate value is at least used_floor(carry_bias)."""
    floor = used_floor(carry_bias)
    return sum(1 for value in gate_activity if value is not None and value >= floor)


def failed(config: dict, message: str, rows=()) -> Summary:
    """The record of a run that could not train (bad data, a crash): status failed."""
    return Summary(status="failed", error=message, config=config, **progress(list(rows)))


def interrupted(config: dict, message: str, rows=(), wall_seconds=None) -> Summary:
    """The record of a run stopped by a signal; rerunning resumes it."""
    return Summary(status="interrupted", error=message, config=config,
                   wall_seconds=wall_seconds, **progress(list(rows)))


def progress(rows: list[dict]) -> dict:
    """What finished epochs say about a run: epochs, steps, best and last validation accuracy."""
    val = [row["val_accuracy"] for row in rows if row.get("val_accuracy") is not None]
    return {
        "epochs": len(rows),
        "steps": rows[-1].get("step", 0) if rows else 0,
        "best_val_accuracy": max(val) if val else None,
        "final_val_accuracy": val[-1] if val else None,
    }


def first_reaching(rows: list[dict], threshold: float) -> tuple[int | None, int | None]:
    """(epoch, step) of the first metrics row whose val_accuracy reaches `threshold`, or
    (None, None): the one definition of "converged" that training and analysis share."""
    for row in rows:
        accuracy = row.get("val_accuracy")
        if accuracy is not None and accuracy >= threshold:
            return row.get("epoch"), row.get("step")
    return None, None


def objective(summary: Summary, metric: str = "best_val_accuracy") -> float:
    """What a sweep maximises: `metric` of a completed run, 0 for any other run (a diverged or
    failed run must not crash the sweeper, which rejects NaN)."""
    if metric not in OBJECTIVES:
        raise ValueError(f"optimized_metric={metric!r}: use one of {', '.join(OBJECTIVES)}.")
    value = getattr(summary, metric)
    if summary.status != "completed" or value is None or not math.isfinite(value):
        return 0.0
    return float(value)


def objectives(summary: Summary | None, metric="best_val_accuracy"):
    """What a sweep's task returns for `optimized_metric`: one float for one name, a list of
    floats (in its order) for a list of names, the shape a one- or multi-objective Optuna
    study expects. `summary` None (a run refused or broken before it had a record) scores 0
    on every objective."""
    empty = Summary(status="failed", config={})
    names = metric_names(metric)
    values = [objective(summary or empty, name) for name in names]
    return values if is_list(metric) else values[0]


def metric_names(metric) -> list[str]:
    """`optimized_metric` as a list of names; ValueError (one sentence) for a name that is
    not an objective, an empty list, a repeated name or a value that is not a name."""
    names = list(metric) if is_list(metric) else [metric]
    allowed = ", ".join(OBJECTIVES)
    shown = repr(names) if is_list(metric) else repr(metric)
    if not names:
        raise ValueError(f"optimized_metric={shown} is not allowed: name at least one of "
                         f"{allowed}.")
    for name in names:
        if not isinstance(name, str) or name not in OBJECTIVES:
            holds = f" holds {name!r}, which" if is_list(metric) else ""
            raise ValueError(f"optimized_metric={shown}{holds} is not allowed: use one of "
                             f"{allowed}, or a list of them.")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"optimized_metric={shown} names {', '.join(repeated)} twice: name "
                         "each objective once.")
    return names


def is_list(value) -> bool:
    """A list of names (a Python list or tuple, or OmegaConf's ListConfig), not one name."""
    return not isinstance(value, (str, bytes, dict)) and hasattr(value, "__iter__") \
        and not hasattr(value, "keys")


def flatten_config(config: dict, prefix: str = "") -> dict:
    """{"optimizer": {"learning_rate": 0.1}} -> {"optimizer.learning_rate": 0.1}: a run's
    config as the dotted keys of the command line."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update(flatten_config(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def append_metrics(run_dir, row: dict) -> None:
    """Append one epoch's metrics as a JSON line, flushed to disk."""
    _append_line(Path(run_dir) / METRICS_FILE, row)


def read_metrics(run_dir) -> list[dict]:
    """Every complete line of metrics.jsonl (a half-written last line is ignored)."""
    return _read_lines(Path(run_dir) / METRICS_FILE)


def rewrite_metrics(run_dir, rows: list[dict]) -> None:
    """Replace metrics.jsonl by `rows` atomically (a resume cuts it back to its checkpoint)."""
    _rewrite_lines(Path(run_dir) / METRICS_FILE, rows)


def append_point(run_dir, point: dict) -> None:
    """Append one point of the step-resolution curve as a JSON line, flushed to disk."""
    _append_line(Path(run_dir) / CURVE_FILE, point)


def read_curve(run_dir) -> list[dict]:
    """Every complete line of curve.jsonl ([] for runs recorded without one)."""
    return _read_lines(Path(run_dir) / CURVE_FILE)


def rewrite_curve(run_dir, points: list[dict]) -> None:
    """Replace curve.jsonl by `points` atomically (a resume cuts it back to its checkpoint)."""
    _rewrite_lines(Path(run_dir) / CURVE_FILE, points)


def _append_line(path: Path, row: dict) -> None:
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(json.dumps(_finite_or_none(row)) + "\n")
        stream.flush()
        os.fsync(stream.fileno())


def _read_lines(path: Path) -> list[dict]:
    """The JSON objects of a .jsonl file; lines that are not one (half-written) are skipped."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):  # valid JSON that is not an epoch's object is no row
            rows.append(row)
    return rows


def _rewrite_lines(path: Path, rows: list[dict]) -> None:
    if not path.exists() and not rows:
        return
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(_finite_or_none(row)) + "\n" for row in rows),
                   encoding="utf-8")
    os.replace(tmp, path)


def write_summary(run_dir, summary: Summary) -> Path:
    """Write summary.json atomically (temp file in the same folder, then rename), with the
    permissions the umask gives every other file (tempfile's would be 0600)."""
    target = Path(run_dir) / SUMMARY_FILE
    payload = json.dumps(_finite_or_none(summary.to_dict()), indent=2)
    partial = target.with_name(f".summary.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "w",
              encoding="utf-8") as stream:
        stream.write(payload + "\n")
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(partial, target)
    return target


def read_summary(run_dir) -> Summary | None:
    """The run's summary, or None when the run has not finished (no summary.json).

    Raises json.JSONDecodeError for a corrupt file and RecordError for one that is not a
    run record of a schema this version reads.
    """
    path = Path(run_dir) / SUMMARY_FILE
    if not path.exists():
        return None
    return Summary.from_dict(json.loads(path.read_text(encoding="utf-8")))


def _finite_or_none(value):
    """JSON has no NaN/inf: record them as null so every reader can parse the file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    return value
