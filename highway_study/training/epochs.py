"""The training batches and the layers' random state of every epoch, from (seed, epoch).

`training_batches` yields epochs `first_epoch..epochs-1` back to back, each in the order
training.order.epoch_order gives it; fit() is called with `steps_per_epoch`, so Keras reads
one epoch's batches per epoch from one iterator. `ReseedEachEpoch` sets the state of every
random layer (dropout) from (seed, epoch) when an epoch begins. Together they make a resumed
run train exactly as the uninterrupted one.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from highway_study.training.order import epoch_order, layer_seeds


def steps_per_epoch(size: int, batch_size: int) -> int:
    return math.ceil(size / batch_size)


def training_batches(x, y, batch_size: int, seed: int, first_epoch: int,
                     epochs: int) -> tf.data.Dataset:
    """The batches of epochs first_epoch..epochs-1 (0-based), each epoch's order from the seed."""
    size = len(x)
    xs, ys = tf.constant(x), tf.constant(y)

    def order(epoch):
        return epoch_order(seed, int(epoch), size).astype(np.int64)

    def one_epoch(epoch):
        indices = tf.numpy_function(order, [epoch], tf.int64, stateful=False)
        indices.set_shape([size])
        return tf.data.Dataset.from_tensor_slices(indices).batch(batch_size)

    batches = tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch)
    options = tf.data.Options()
    options.autotune.enabled = False  # autotune can idle for seconds at fit()'s teardown
    options.deterministic = True
    return batches.map(lambda i: (tf.gather(xs, i), tf.gather(ys, i))).with_options(options)


class ReseedEachEpoch(keras.callbacks.Callback):
    """Sets every random layer's seed state from (seed, epoch) as the epoch begins."""

    def __init__(self, seed: int):
        super().__init__()
        self.seed = seed

    def on_epoch_begin(self, epoch, logs=None):
        states = [v for v in self.model.variables if v.name == "seed_generator_state"]
        for state, value in zip(states, layer_seeds(self.seed, epoch, len(states))):
            state.assign(np.array([value, 0], dtype=state.dtype))
