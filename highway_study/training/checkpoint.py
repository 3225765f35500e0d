"""Resuming a run: per-epoch checkpoints that survive a kill, and the history they hold.

After epoch N, `<run>/checkpoint/` holds
- `epoch-0000N.weights.h5`: the weights and the optimizer state;
- `epoch-0000N.json`: the epoch, the wall time spent so far, and whether training ended there
  (last epoch, max_steps, patience or divergence), written after the weights: a checkpoint
  is whole once its .json exists;
- the same pair of the epoch before, kept as a fallback;
- `config.json`: the config the run trains with (the runtime refuses to resume another).

Every file is written under a temporary name and renamed, so a kill mid-write leaves the
previous checkpoint as it was. The folder is removed by train() only after summary.json is
written: a run stopped while it is being tested or lesioned resumes there, without training.

`restore` loads the newest checkpoint that reads; one that does not is reported in one
sentence, removed, and the one before it is tried, else training starts over. metrics.jsonl
is cut back to the restored epoch only once that is decided, so no epoch is recorded twice.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import keras

from highway_study import record

log = logging.getLogger("highway_study")

CHECKPOINT_DIR = "checkpoint"
CONFIG_FILE = "config.json"
_NAME = re.compile(r"^epoch-(\d+)\.(json|weights\.h5)$")
# What keras.callbacks.BackupAndRestore wrote before (still restored, as the oldest choice).
_LEGACY_WEIGHTS, _LEGACY_STATE = "latest.weights.h5", "training_metadata.json"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message says why, in a few words."""


@dataclass
class Resume:
    """Where a run goes on from: what `restore` found in its folder."""

    epoch: int = 0  # epochs the restored weights hold (0: a fresh start)
    history: list = field(default_factory=list)  # their metrics rows
    wall_seconds: float = 0.0  # time the earlier attempts spent
    trained: bool = False  # training had ended: only the test, lesions and summary are missing
    diverged: bool = False
    intact: bool = True  # False: a failed load may have left the model's weights half changed


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


def restore(run_dir, model, config: dict) -> Resume:
    """Load the newest usable checkpoint into `model` and cut metrics.jsonl back to it.

    Also records `config` as the run's config and clears files a kill left half written.
    """
    run_dir = Path(run_dir)
    folder = checkpoint_dir(run_dir)
    rows = record.read_metrics(run_dir)
    resume = Resume(wall_seconds=_earlier_seconds(run_dir))
    candidates = _candidates(folder)
    for index, (epoch, weights, state) in enumerate(candidates):
        try:
            info = _read_state(state, epoch)
            kept = [row for row in rows if row.get("epoch", 0) <= epoch]
            if [row.get("epoch") for row in kept] != list(range(1, epoch + 1)):
                raise CheckpointError(f"metrics.jsonl does not hold its epochs 1-{epoch}")
            if not weights.is_file():
                raise CheckpointError(f"{weights.name} is missing")
            resume.intact = False
            _load(model, weights)
        except Exception as error:  # noqa: BLE001 - any unreadable checkpoint: try the next
            then = ("trying the one before it" if index + 1 < len(candidates)
                    else "training starts over from epoch 1")
            log.warning("%s: the checkpoint of epoch %d cannot be used (%s); %s.",
                        run_dir.name, epoch, _reason(error), then)
            _discard(folder, epoch, weights, state)
            continue
        resume.epoch, resume.history, resume.intact = epoch, kept, True
        resume.wall_seconds = max(resume.wall_seconds, float(info.get("wall_seconds") or 0.0))
        resume.trained = bool(info.get("trained"))
        resume.diverged = bool(info.get("diverged"))
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


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves a checkpoint after every epoch (see the module's docstring).

    Put it after the callbacks that stop training (recorder, Patience): whether training
    ends with this epoch is part of the checkpoint.
    """

    def __init__(self, run_dir, epochs: int, elapsed: Callable[[], float],
                 diverged: Callable[[], bool]):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.epochs = epochs
        self.elapsed = elapsed
        self.diverged = diverged

    def on_epoch_end(self, epoch, logs=None):
        ended = bool(self.model.stop_training) or epoch + 1 >= self.epochs
        save(self.run_dir, self.model, epoch + 1, {
            "wall_seconds": self.elapsed(), "trained": ended, "diverged": self.diverged()})


def save(run_dir, model, epoch: int, state: dict) -> None:
    """Write the checkpoint of `epoch` (weights, then state) and drop all but the one before."""
    folder = checkpoint_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / f"epoch-{epoch:05d}.weights.h5"
    partial = folder / f"tmp-{weights.name}"  # Keras wants the .weights.h5 ending
    model.save_weights(str(partial), overwrite=True)
    _fsync(partial)
    os.replace(partial, weights)
    _write_json(folder / f"epoch-{epoch:05d}.json", {"epoch": epoch, **state})
    for path in folder.iterdir():
        match = _NAME.match(path.name)
        if (match and int(match.group(1)) < epoch - 1) or path.name in (
                _LEGACY_WEIGHTS, _LEGACY_STATE):
            path.unlink(missing_ok=True)


def remove(run_dir) -> None:
    """Delete the run's checkpoints (once its summary is written)."""
    shutil.rmtree(checkpoint_dir(run_dir), ignore_errors=True)


def _candidates(folder: Path) -> list[tuple[int, Path, Path]]:
    """(epoch, weights, state) of every checkpoint whose state file exists, newest first."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _NAME.match(path.name)
        if match and match.group(2) == "json":
            epoch = int(match.group(1))
            found.append((epoch, folder / f"epoch-{epoch:05d}.weights.h5", path))
    legacy = folder / _LEGACY_STATE
    if legacy.is_file():  # oldest choice: its epoch is only known once read
        found.append((-1, folder / _LEGACY_WEIGHTS, legacy))
    found.sort(key=lambda item: item[0], reverse=True)
    if found and found[-1][0] == -1:
        try:
            epoch = int(json.loads(legacy.read_text(encoding="utf-8"))["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            epoch = 0
        found[-1] = (epoch, found[-1][1], legacy)
    return found


def _read_state(path: Path, epoch: int) -> dict:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{path.name} is not valid JSON") from None
    if not isinstance(state, dict) or state.get("epoch") != epoch or epoch < 1:
        raise CheckpointError(f"{path.name} does not name epoch {epoch}")
    return state


def _load(model, weights: Path) -> None:
    """Weights and optimizer state into `model` (the optimizer is built first to receive them)."""
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.load_weights(str(weights))


def _reason(error: Exception) -> str:
    if isinstance(error, CheckpointError):
        return str(error)
    first_line = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first_line}".rstrip(": ")


def _discard(folder: Path, epoch: int, weights: Path, state: Path) -> None:
    for path in (weights, state):
        path.unlink(missing_ok=True)


def _remove_temporaries(folder: Path) -> None:
    """Files a kill left half written, and weights whose state file was never written."""
    states = {path.name[:-len(".json")] for path in folder.glob("epoch-*.json")}
    for path in folder.iterdir():
        orphan = path.name.endswith(".weights.h5") and _NAME.match(path.name) and (
            path.name[:-len(".weights.h5")] not in states)
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
