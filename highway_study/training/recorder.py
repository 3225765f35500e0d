"""Keras callbacks that turn a fit() into a run record.

`RunRecorder` appends one metrics.jsonl line per epoch (with the gate activity of every
highway layer on a fixed validation batch), stops on a non-finite loss (divergence) or at
`max_steps`, prints a progress line, and mirrors the gate activity into TensorBoard.
`StepPoints` feeds fit()'s steps to the step-resolution curve (training.curve) and the
progress display; `PointProbe` is what a Keras model measures at a point, and
`TensorBoardPoints` writes each point to TensorBoard with the step on the x axis.
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


class PointProbe:
    """Measures a point: validation loss and accuracy on a fixed subset, learning rate,
    gate activity on the fixed gate batch. Uses predict_on_batch, never evaluate(): that
    would reset the training metrics of the epoch in progress."""

    def __init__(self, model, x_val, y_val, gate_batch, chunk: int = 1000):
        self.model = model
        self.chunks = [x_val[i:i + chunk] for i in range(0, len(x_val), chunk)]
        self.labels = np.asarray(y_val)
        self.gate_batch = gate_batch

    def __call__(self) -> dict:
        logits = np.concatenate([np.asarray(self.model.predict_on_batch(x), dtype=np.float64)
                                 for x in self.chunks])
        loss, accuracy = xent_and_accuracy(logits, self.labels)
        return {
            "val_loss": loss,
            "val_accuracy": accuracy,
            "learning_rate": _float(self.model.optimizer.learning_rate),
            "gate_activity": gate_activity(self.model, self.gate_batch),
        }


def xent_and_accuracy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(mean cross-entropy per example, accuracy) of logits against integer labels."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -float(np.mean(log_probs[np.arange(len(labels)), labels]))
    return loss, float(np.mean(np.argmax(logits, axis=1) == labels))


class StepPoints(keras.callbacks.Callback):
    """Drives a curve.StepRecorder (None: no curve) and a progress display from fit().

    Keras reports the training cross-entropy as a running mean since the epoch began; the
    examples behind it (`batch_size`, and a smaller last batch of `train_size`) turn it back
    into each step's mean, which the recorder averages between points.
    """

    def __init__(self, recorder, progress, train_size: int, batch_size: int):
        super().__init__()
        self.recorder = recorder
        self.progress = progress
        self.train_size = train_size
        self.batch_size = batch_size

    def on_train_begin(self, logs=None):
        if self.recorder is not None:
            self._show(self.recorder.start())

    def on_epoch_begin(self, epoch, logs=None):
        self._examples, self._loss_sum = 0, 0.0

    def on_train_batch_end(self, batch, logs=None):
        self.progress.advance()
        if self.recorder is None:
            return
        size = min(self.batch_size, self.train_size - batch * self.batch_size)
        total = float((logs or {}).get("xent", float("nan"))) * (self._examples + size)
        loss = (total - self._loss_sum) / size
        self._examples, self._loss_sum = self._examples + size, total
        self._show(self.recorder.after_step(loss, size))

    def on_epoch_end(self, epoch, logs=None):
        if self.recorder is None:
            self.progress.show_accuracy(_float((logs or {}).get("val_accuracy")))

    def on_train_end(self, logs=None):
        if self.recorder is not None:
            self._show(self.recorder.finish())

    def _show(self, point):
        if point is not None:
            self.progress.show_accuracy(point.get("val_accuracy"))


class TensorBoardPoints:
    """Writes every point of the curve under tensorboard/steps/, the step on the x axis:
    the scalars, and the gates as their mean, maximum and a histogram over layers."""

    SCALARS = ("val_accuracy", "val_loss", "train_loss", "learning_rate")

    def __init__(self, log_dir):
        import tensorflow as tf

        self._tf = tf
        self._writer = tf.summary.create_file_writer(str(log_dir))

    def __call__(self, point: dict) -> None:
        tf = self._tf
        with self._writer.as_default(step=point["step"]):
            for key in self.SCALARS:
                if point.get(key) is not None and math.isfinite(point[key]):
                    tf.summary.scalar(key, point[key])
            gates = np.asarray(point.get("gate_activity") or [], dtype=float)
            if gates.size:  # per layer: curve.jsonl (one scalar each would cost a deep net)
                tf.summary.scalar("gate_activity/mean", float(np.mean(gates)))
                tf.summary.scalar("gate_activity/max", float(np.max(gates)))
                tf.summary.histogram("gate_activity/all_layers", gates)
        self._writer.flush()


def _float(value):
    if value is None:
        return None
    return float(keras.ops.convert_to_numpy(value))


def _fmt(value):
    return "nan" if value is None or not math.isfinite(value) else f"{value:.4f}"


def _pct(value):
    return "  nan" if value is None or not math.isfinite(value) else f"{100 * value:5.1f}%"
