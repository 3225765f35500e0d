"""Keras callbacks that turn a fit() into a run record.

`RunRecorder` appends one metrics.jsonl line per epoch (with the gate activity of every
highway layer on a fixed validation batch), stops on a non-finite loss (divergence) or at
`max_steps`, prints a progress line, and mirrors the gate activity into TensorBoard.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import keras
import numpy as np

from highway_study import record
from highway_study.models.probes import gate_activity

log = logging.getLogger(__name__)


class RunRecorder(keras.callbacks.Callback):
    def __init__(self, run_dir, gate_batch, max_steps=None, verbose=True,
                 tensorboard_dir=None, history=()):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.gate_batch = gate_batch
        self.max_steps = max_steps
        self.verbose = verbose
        # Epochs finished before a resume: the record goes on from their last step.
        self.history: list[dict] = list(history)
        self.step = self.history[-1]["step"] if self.history else 0
        self.diverged = False
        self._writer = None
        if tensorboard_dir is not None:
            import tensorflow as tf

            self._writer = tf.summary.create_file_writer(str(Path(tensorboard_dir) / "gates"))

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        loss = float((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss):
            self.diverged = True
            self.model.stop_training = True
            log.warning("loss became %s at step %d: stopping (status diverged)", loss, self.step)
        elif self.max_steps is not None and self.step >= self.max_steps:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        row = {
            "epoch": epoch + 1,
            "step": self.step,
            "train_loss": _float(logs.get("xent")),
            "train_accuracy": _float(logs.get("accuracy")),
            "val_loss": _float(logs.get("val_xent")),
            "val_accuracy": _float(logs.get("val_accuracy")),
            "learning_rate": _float(self.model.optimizer.learning_rate),
            "seconds": time.perf_counter() - self._epoch_start,
            "gate_activity": [] if self.diverged else gate_activity(self.model, self.gate_batch),
        }
        record.append_metrics(self.run_dir, row)
        self.history.append(row)
        self._to_tensorboard(row)
        self._progress(row)

    def _progress(self, row):
        line = (
            f"epoch {row['epoch']:>3}  step {row['step']:>6}  "
            f"train loss {_fmt(row['train_loss'])} acc {_pct(row['train_accuracy'])}  "
            f"val loss {_fmt(row['val_loss'])} acc {_pct(row['val_accuracy'])}  "
            f"{row['seconds']:.1f} s"
        )
        log.log(logging.INFO if self.verbose else logging.DEBUG, line)

    def _to_tensorboard(self, row):
        if self._writer is None or not row["gate_activity"]:
            return
        import tensorflow as tf

        with self._writer.as_default(step=row["epoch"]):
            for index, value in enumerate(row["gate_activity"]):
                tf.summary.scalar(f"gate_activity/layer_{index:04d}", value)
            tf.summary.histogram("gate_activity/all_layers", np.asarray(row["gate_activity"]))
        self._writer.flush()


def _float(value):
    if value is None:
        return None
    return float(keras.ops.convert_to_numpy(value))


def _fmt(value):
    return "nan" if value is None or not math.isfinite(value) else f"{value:.4f}"


def _pct(value):
    return "  nan" if value is None or not math.isfinite(value) else f"{100 * value:5.1f}%"
