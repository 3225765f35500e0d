"""The run record: the one contract between training and analysis.

A run folder holds `metrics.jsonl` (one JSON object per finished epoch, appended and flushed
as the epoch ends) and `summary.json` (written once, atomically, when the run ends). A killed
run therefore leaves every finished epoch readable and either no summary or a whole one.
This module imports neither TensorFlow nor Hydra, so analysis can use it.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

SCHEMA = 1
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
STATUSES = ("completed", "diverged", "failed", "interrupted")


def append_metrics(run_dir, row: dict) -> None:
    """Append one epoch's metrics as a JSON line, flushed to disk."""
    with open(Path(run_dir) / METRICS_FILE, "a", encoding="utf-8") as stream:
        stream.write(json.dumps(_finite_or_none(row)) + "\n")
        stream.flush()
        os.fsync(stream.fileno())


def read_metrics(run_dir) -> list[dict]:
    """Every complete line of metrics.jsonl (a half-written last line is ignored)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def rewrite_metrics(run_dir, rows: list[dict]) -> None:
    """Replace metrics.jsonl by `rows` atomically (a resume cuts it back to its checkpoint)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists() and not rows:
        return
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(_finite_or_none(row)) + "\n" for row in rows),
                   encoding="utf-8")
    os.replace(tmp, path)


def progress(rows: list[dict]) -> dict:
    """What finished epochs say about a run, for its summary: epochs, steps, best and last
    validation accuracy."""
    val = [row["val_accuracy"] for row in rows if row.get("val_accuracy") is not None]
    return {
        "epochs": len(rows),
        "steps": rows[-1]["step"] if rows else 0,
        "best_val_accuracy": max(val) if val else None,
        "final_val_accuracy": val[-1] if val else None,
    }


def write_summary(run_dir, summary: dict) -> Path:
    """Write summary.json atomically (temp file in the same folder, then rename)."""
    target = Path(run_dir) / SUMMARY_FILE
    payload = json.dumps({"schema": SCHEMA, **_finite_or_none(summary)}, indent=2)
    with tempfile.NamedTemporaryFile(
        "w", dir=run_dir, prefix=".summary.", suffix=".tmp", delete=False, encoding="utf-8"
    ) as stream:
        stream.write(payload + "\n")
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(stream.name, target)
    return target


def read_summary(run_dir) -> dict | None:
    """The run's summary, or None when the run has not finished (no summary.json)."""
    path = Path(run_dir) / SUMMARY_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _finite_or_none(value):
    """JSON has no NaN/inf: record them as null so every reader can parse the file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    return value
