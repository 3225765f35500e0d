"""The optimizer, the loss and the input pipeline a config asks for."""

from __future__ import annotations

import keras
import tensorflow as tf


def make_optimizer(opt_cfg):
    if opt_cfg.name == "adam":
        return keras.optimizers.Adam(learning_rate=opt_cfg.learning_rate)
    momentum = opt_cfg.momentum if opt_cfg.name == "momentum" else 0.0
    return keras.optimizers.SGD(learning_rate=opt_cfg.learning_rate, momentum=momentum)


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
