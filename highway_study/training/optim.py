"""The optimizer, the loss and the input pipeline a config asks for."""

from __future__ import annotations

import keras
import tensorflow as tf


def make_optimizer(opt_cfg, total_steps: int | None = None):
    """The configured optimizer; `total_steps` is the run's length, which a decaying
    schedule (`optimizer.schedule=cosine`) needs."""
    rate = learning_rate(opt_cfg, total_steps)
    if opt_cfg.name == "adam":
        return keras.optimizers.Adam(learning_rate=rate)
    momentum = opt_cfg.momentum if opt_cfg.name == "momentum" else 0.0
    return keras.optimizers.SGD(learning_rate=rate, momentum=momentum)


def learning_rate(opt_cfg, total_steps: int | None):
    """A constant rate, or a cosine decay from it to 0 at the run's last step."""
    schedule = opt_cfg.get("schedule", "constant")
    if schedule == "constant":
        return opt_cfg.learning_rate
    if total_steps is None:
        raise ValueError(f"optimizer.schedule={schedule} needs the run's total steps.")
    return keras.optimizers.schedules.CosineDecay(opt_cfg.learning_rate, total_steps)


def make_loss(reduction: str):
    return keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction="sum" if reduction == "sum" else "sum_over_batch_size"
    )


def to_dataset(x, y, batch_size: int) -> tf.data.Dataset:
    """A batched tf.data pipeline in the data's order (training batches: training.epochs)."""
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    options = tf.data.Options()
    options.autotune.enabled = False  # autotune can idle for seconds at fit()'s teardown
    options.deterministic = True
    return ds.batch(batch_size).with_options(options)
