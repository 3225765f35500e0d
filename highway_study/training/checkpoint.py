"""Resuming a run: per-epoch checkpoints that survive a kill, one format for every run.

After epoch N, `<run>/checkpoint/` holds
- `epoch-0000N.npz`: the member's weights in its Keras model's order and shapes
  (`weight_000`, ...) and its optimizer slots (`slot_m_000`, ...), whichever members
  computed them (a run alone, a population, XLA or the compiled kernel);
- `epoch-0000N.json`: the epoch, the step, the wall time spent so far, whether training
  ended there and why, and the curve's running training loss; written after the arrays:
  a checkpoint is whole once its .json exists;
- the same pair of the epoch before, kept as a fallback;
- `config.json`: the config the run trains with (the runtime refuses to resume another).

Every file is written under a temporary name and renamed, so a kill mid-write leaves the
previous checkpoint as it was. The folder is removed only after summary.json is written: a
run stopped while it is being tested or lesioned resumes there, without training.

`restore` takes the newest checkpoint that reads and that metrics.jsonl agrees with; one
that does not is reported in one sentence and the one before it is tried, else training
starts over. metrics.jsonl is cut back to the restored epoch, so a kill between writing an
epoch's metrics row and its checkpoint loses that epoch only. Checkpoints of earlier
versions (Keras `.weights.h5`, a population's `population.npz`) are still read.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from highway_study import record

log = logging.getLogger("highway_study")

CHECKPOINT_DIR = "checkpoint"
CONFIG_FILE = "config.json"
_NAME = re.compile(r"^epoch-(\d+)\.(json|npz|weights\.h5)$")
# What earlier versions wrote: Keras's BackupAndRestore, and a population's one file.
_LEGACY_WEIGHTS, _LEGACY_STATE = "latest.weights.h5", "training_metadata.json"
_POPULATION_FILE = "population.npz"
_POPULATION_NAMES = ("w_in", "b_in", "kernel", "bias", "w_out", "b_out")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message says why, in a few words."""


@dataclass
class Resume:
    """Where a run goes on from: what `restore` found in its folder."""

    epoch: int = 0  # epochs the restored state holds (0: a fresh start)
    history: list = field(default_factory=list)  # their metrics rows
    wall_seconds: float = 0.0  # time the earlier attempts spent
    info: dict = field(default_factory=dict)  # the checkpoint's .json
    state: dict | None = None  # {"weights": [...], "slots": {...}}; None: a fresh start

    @property
    def trained(self) -> bool:
        """Training had ended: only the test, lesions and summary are missing."""
        return bool(self.info.get("trained"))


def checkpoint_dir(run_dir) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def saved_config(run_dir) -> dict | None:
    """The config the run's checkpoints were trained with, or None."""
    try:
        config = json.loads((checkpoint_dir(run_dir) / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def has_checkpoint(run_dir) -> bool:
    return bool(_candidates(checkpoint_dir(run_dir)))


def latest(run_dir) -> tuple[int, dict]:
    """(epoch, its .json) of the checkpoint a rerun would resume from, judged without
    loading any arrays; (0, {}) when there is none."""
    rows = record.read_metrics(run_dir)
    for epoch, _, state in _candidates(checkpoint_dir(run_dir)):
        try:
            return epoch, _read_state(state, epoch, rows)
        except CheckpointError:
            continue
    return 0, {}


def latest_epoch(run_dir) -> int:
    """The epoch a rerun would resume from (0: a fresh start)."""
    return latest(run_dir)[0]


def restore(run_dir, config: dict, at_most: int | None = None,
            read_keras: Callable[[Path], dict] | None = None) -> Resume:
    """The newest usable checkpoint of epoch `at_most` or earlier, with metrics.jsonl cut
    back to it; also records `config` as the run's config and clears half-written files.

    `read_keras(path)` turns an earlier version's Keras `.weights.h5` into the state
    (None: such checkpoints are skipped with one sentence).
    """
    run_dir = Path(run_dir)
    folder = checkpoint_dir(run_dir)
    rows = record.read_metrics(run_dir)
    resume = Resume(wall_seconds=_earlier_seconds(run_dir))
    candidates = _candidates(folder)
    for epoch, arrays, state in [c for c in candidates if at_most is not None
                                 and c[0] > at_most]:  # newer than this run may go
        try:
            _read_state(state, epoch, rows)
        except CheckpointError as error:
            log.warning("%s: the checkpoint of epoch %d cannot be used (%s).", run_dir.name,
                        epoch, error)
            _discard(arrays, state)
    candidates = [c for c in candidates if at_most is None or c[0] <= at_most]
    for index, (epoch, arrays, state) in enumerate(candidates):
        try:
            info = _read_state(state, epoch, rows)
            resume.state = _read_arrays(arrays, read_keras)
        except Exception as error:  # noqa: BLE001 - any unreadable checkpoint: try the next
            then = ("trying the one before it" if index + 1 < len(candidates)
                    else "training starts over from epoch 1")
            log.warning("%s: the checkpoint of epoch %d cannot be used (%s); %s.",
                        run_dir.name, epoch, _reason(error), then)
            if at_most is None:
                _discard(arrays, state)
            continue
        resume.epoch, resume.info = epoch, info
        resume.history = [row for row in rows if row.get("epoch", 0) <= epoch]
        resume.wall_seconds = max(resume.wall_seconds, float(info.get("wall_seconds") or 0.0))
        break
    if len(rows) > len(resume.history):
        log.info("%s: metrics.jsonl cut back from %d to %d epochs (the checkpoint's)",
                 run_dir.name, len(rows), len(resume.history))
    record.rewrite_metrics(run_dir, resume.history)
    folder.mkdir(parents=True, exist_ok=True)
    _remove_temporaries(folder)
    _write_json(folder / CONFIG_FILE, config)
    if resume.epoch:
        log.info("resuming %s after epoch %d", run_dir.name, resume.epoch)
    return resume


def save(run_dir, epoch: int, state: dict, info: dict) -> None:
    """Write the checkpoint of `epoch` (arrays, then the .json) and drop all but the one
    before, and any earlier version's files."""
    folder = checkpoint_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {f"weight_{i:03d}": w for i, w in enumerate(state["weights"])}
    for slot, values in state.get("slots", {}).items():
        arrays.update({f"slot_{slot}_{i:03d}": v for i, v in enumerate(values)})
    with tempfile.NamedTemporaryFile(dir=folder, prefix="tmp-", suffix=".npz",
                                     delete=False) as out:
        np.savez(out, **arrays)
        out.flush()
        os.fsync(out.fileno())
    os.replace(out.name, folder / f"epoch-{epoch:05d}.npz")
    _write_json(folder / f"epoch-{epoch:05d}.json", {"epoch": epoch, **info})
    for path in folder.iterdir():
        match = _NAME.match(path.name)
        if (match and int(match.group(1)) < epoch - 1) or path.name in (
                _LEGACY_WEIGHTS, _LEGACY_STATE, _POPULATION_FILE):
            path.unlink(missing_ok=True)


def remove(run_dir) -> None:
    """Delete the run's checkpoints (once its summary is written)."""
    shutil.rmtree(checkpoint_dir(run_dir), ignore_errors=True)


def _candidates(folder: Path) -> list[tuple[int, Path, Path]]:
    """(epoch, arrays, state file) of every checkpoint whose state file exists, newest first."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _NAME.match(path.name)
        if match and match.group(2) == "json":
            epoch = int(match.group(1))
            arrays = folder / f"epoch-{epoch:05d}.npz"
            if not arrays.exists() and (folder / f"epoch-{epoch:05d}.weights.h5").exists():
                arrays = folder / f"epoch-{epoch:05d}.weights.h5"
            found.append((epoch, arrays, path))
    for weights, state in ((_LEGACY_WEIGHTS, _LEGACY_STATE),
                           (_POPULATION_FILE, _POPULATION_FILE)):
        if (folder / state).is_file():
            found.append((_legacy_epoch(folder / state), folder / weights, folder / state))
    found.sort(key=lambda item: item[0], reverse=True)
    return found


def _legacy_epoch(path: Path) -> int:
    try:
        if path.suffix == ".npz":
            with np.load(path) as saved:
                return int(saved["epoch"])
        return int(json.loads(path.read_text(encoding="utf-8"))["epoch"])
    except Exception:  # noqa: BLE001 - unreadable: _read_state says why
        return 0


def _read_state(path: Path, epoch: int, rows: list) -> dict:
    """The checkpoint's .json (for a population.npz, what it says of itself), checked
    against metrics.jsonl."""
    if path.name == _POPULATION_FILE:
        try:
            with np.load(path) as saved:
                diverged_at = int(saved["diverged_at"])
        except Exception:  # noqa: BLE001 - a truncated or foreign file
            raise CheckpointError(f"{path.name} cannot be read") from None
        state = {"epoch": epoch, "diverged_at": diverged_at if diverged_at >= 0 else None}
    else:
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raise CheckpointError(f"{path.name} is not valid JSON") from None
    if not isinstance(state, dict) or state.get("epoch") != epoch or epoch < 1:
        raise CheckpointError(f"{path.name} does not name epoch {epoch}")
    kept = [row.get("epoch") for row in rows if row.get("epoch", 0) <= epoch]
    if kept != list(range(1, epoch + 1)):
        raise CheckpointError(f"metrics.jsonl does not hold its epochs 1-{epoch}")
    if "diverged" in state and "diverged_at" not in state:  # an earlier version's run alone
        state["diverged_at"] = rows[epoch - 1].get("step") if state["diverged"] else None
    if "step" not in state:
        state["step"] = rows[epoch - 1].get("step")
    return state


def _read_arrays(path: Path, read_keras) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path.name} is missing")
    if path.name.endswith(".weights.h5"):
        if read_keras is None:
            raise CheckpointError(f"{path.name} is in an earlier version's format")
        return read_keras(path)
    with np.load(path) as saved:
        if path.name == _POPULATION_FILE:
            return _population_state(saved)
        weights = [saved[name] for name in sorted(n for n in saved.files
                                                  if n.startswith("weight_"))]
        slots = {}
        for name in sorted(n for n in saved.files if n.startswith("slot_")):
            slots.setdefault(name.split("_")[1], []).append(saved[name])
    if not weights:
        raise CheckpointError(f"{path.name} holds no weights")
    return {"weights": weights, "slots": slots}


def _population_state(saved) -> dict:
    """An earlier version's population.npz (a highway_fc member, bias axes of length 1)
    in the Keras model's layout."""
    def keras_layout(name, array):
        if name in ("b_in", "b_out"):
            return array.reshape(-1)
        return array[:, 0, :] if name == "bias" else array

    slots = {}
    for slot in ("m", "v"):
        if f"{slot}_kernel" in saved.files:
            slots[slot] = [keras_layout(n, saved[f"{slot}_{n}"]) for n in _POPULATION_NAMES]
    return {"weights": [keras_layout(n, saved[n]) for n in _POPULATION_NAMES], "slots": slots}


def _reason(error: Exception) -> str:
    if isinstance(error, CheckpointError):
        return str(error)
    first_line = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first_line}".rstrip(": ")


def _discard(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _remove_temporaries(folder: Path) -> None:
    """Files a kill left half written, and arrays whose state file was never written."""
    states = {path.name[:-len(".json")] for path in folder.glob("epoch-*.json")}
    for path in folder.iterdir():
        stem = path.name.split(".")[0]
        orphan = _NAME.match(path.name) and not path.name.endswith(".json") and (
            stem not in states)
        if path.name.startswith("tmp-") or path.name.endswith(".tmp") or orphan:
            path.unlink(missing_ok=True)


def _earlier_seconds(run_dir: Path) -> float:
    """Wall time recorded by earlier attempts (an interrupted or failed run's summary)."""
    try:
        summary = record.read_summary(run_dir)
    except (OSError, ValueError):
        return 0.0
    if summary is None or summary.finished:
        return 0.0
    return float(summary.wall_seconds or 0.0)


def _write_json(path: Path, data: dict) -> None:
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(data), encoding="utf-8")
    _fsync(partial)
    os.replace(partial, path)


def _fsync(path: Path) -> None:
    with open(path, "rb") as stream:
        os.fsync(stream.fileno())
