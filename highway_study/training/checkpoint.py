"""Resuming a run: the per-epoch checkpoint, the history it holds, and stopping safely.

An unfinished run (no summary, `interrupted`, `failed`) trains from the per-epoch
checkpoint in `<run>/checkpoint/` when there is one; metrics.jsonl is cut back to the
checkpoint's epoch so no epoch is ever recorded twice. The checkpoint is Keras's
BackupAndRestore (weights + optimizer state, one file overwritten every epoch); it is
deleted when training ends.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

import keras

from highway_study import record

log = logging.getLogger("highway_study")

CHECKPOINT_DIR = "checkpoint"
_CHECKPOINT_STATE = "training_metadata.json"  # BackupAndRestore's record of the saved epoch


def checkpoint_dir(run_dir) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def checkpoint_callback(run_dir):
    """Keras's BackupAndRestore: saves every epoch, restores in fit(), deletes at the end."""
    return keras.callbacks.BackupAndRestore(
        str(checkpoint_dir(run_dir)), save_freq="epoch", delete_checkpoint=True)


def saved_epoch(run_dir) -> int:
    """The number of epochs the checkpoint holds (0 when there is none)."""
    state = checkpoint_dir(run_dir) / _CHECKPOINT_STATE
    if not state.exists():
        return 0
    try:
        return int(json.loads(state.read_text(encoding="utf-8"))["epoch"])
    except (ValueError, KeyError, TypeError):
        return 0


def restore_history(run_dir) -> list[dict]:
    """The metrics rows of the epochs the checkpoint holds; metrics.jsonl is cut back to them.

    Rows past the checkpoint (an epoch recorded just before a kill, but not saved) are
    dropped, because fit() will train that epoch again.
    """
    epoch = saved_epoch(run_dir)
    rows = [row for row in record.read_metrics(run_dir) if row.get("epoch", 0) <= epoch]
    if len(rows) != epoch:  # the checkpoint and the record disagree: start over
        epoch, rows = 0, []
        with contextlib.suppress(FileNotFoundError):
            for path in checkpoint_dir(run_dir).iterdir():
                path.unlink()
    record.rewrite_metrics(run_dir, rows)
    if epoch:
        log.info("resuming %s after epoch %d", Path(run_dir).name, epoch)
    return rows


class StopRequested(Exception):
    """Raised inside fit() at a safe point; train() turns it into training.Interrupted."""


class StopWhenAsked(keras.callbacks.Callback):
    """Stops fit() between steps once `should_stop()` is true, before the epoch ends.

    Raising (rather than setting stop_training) keeps Keras from closing the epoch: no
    metrics row or checkpoint is written for a half-trained epoch, so a resume repeats
    exactly the epoch that was cut.
    """

    def __init__(self, should_stop):
        super().__init__()
        self.should_stop = should_stop
        self.stopped = False

    def on_train_batch_end(self, batch, logs=None):
        self._check()

    def on_epoch_begin(self, epoch, logs=None):  # every callback has ended the last epoch
        self._check()

    def _check(self):
        if self.should_stop():
            self.stopped = True
            raise StopRequested()
