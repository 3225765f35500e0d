"""A run's TensorBoard logs: every epoch's metrics and gates, and every point of the curve."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import tensorflow as tf


class TensorBoardEpochs:
    """Writes each metrics row under tensorboard/: the losses and accuracies with the epoch
    on the x axis, and every highway layer's gate activity."""

    SCALARS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")

    def __init__(self, log_dir):
        self._writer = tf.summary.create_file_writer(str(Path(log_dir)))

    def __call__(self, row: dict) -> None:
        with self._writer.as_default(step=row["epoch"]):
            for key in self.SCALARS:
                if row.get(key) is not None and math.isfinite(row[key]):
                    tf.summary.scalar(f"epoch_{key}", row[key])
            for index, value in enumerate(row.get("gate_activity") or []):
                tf.summary.scalar(f"gate_activity/layer_{index:04d}", value)
        self._writer.flush()


class TensorBoardPoints:
    """Writes every point of the curve under tensorboard/steps/, the step on the x axis:
    the scalars, and the gates as their mean, maximum and a histogram over layers."""

    SCALARS = ("val_accuracy", "val_loss", "train_loss", "learning_rate")

    def __init__(self, log_dir):
        self._writer = tf.summary.create_file_writer(str(log_dir))

    def __call__(self, point: dict) -> None:
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
