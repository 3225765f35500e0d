"""The optimizer, the loss and the input pipeline a config asks for."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from highway_study.training import order


def make_optimizer(opt_cfg):
    if opt_cfg.name == "adam":
        return keras.optimizers.Adam(learning_rate=opt_cfg.learning_rate)
    momentum = opt_cfg.momentum if opt_cfg.name == "momentum" else 0.0
    return keras.optimizers.SGD(learning_rate=opt_cfg.learning_rate, momentum=momentum)


def make_loss(reduction: str):
    return keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction="sum" if reduction == "sum" else "sum_over_batch_size"
    )


def to_dataset(x, y, batch_size: int, seed: int | None = None) -> tf.data.Dataset:
    """A batched tf.data pipeline; shuffled (seeded, every epoch) when `seed` is given."""
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if seed is not None:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    options = tf.data.Options()
    options.autotune.enabled = False  # autotune can idle for seconds at fit()'s teardown
    options.deterministic = True
    return ds.batch(batch_size).with_options(options)


def ordered_batches(x, y, batch_size: int, seed: int, first_epoch: int,
                    epochs: int) -> tf.data.Dataset:
    """The training batches of epochs `first_epoch`..`epochs`-1, one after the other, each
    epoch in `training.order`'s permutation: a resumed run continues exactly where the
    uninterrupted one would be, and a population member sees what it would see alone."""

    def batches():
        for epoch in range(first_epoch, epochs):
            for index in order.epoch_batches(seed, epoch, len(x), batch_size):
                yield x[index], y[index]

    signature = (tf.TensorSpec((None, *x.shape[1:]), tf.as_dtype(x.dtype)),
                 tf.TensorSpec((None,), tf.as_dtype(np.asarray(y).dtype)))
    return tf.data.Dataset.from_generator(batches, output_signature=signature)
