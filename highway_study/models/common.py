"""Pieces every builder shares: initializers, a hidden layer's arguments, the classifier."""

from __future__ import annotations

import sys

import keras
from keras import ops


def kernel_initializer(model_cfg):
    """The configured weight initializer (stddev applied to the normal families).

    Unseeded on purpose: keras.utils.set_random_seed makes the draws repeatable.
    """
    name = model_cfg.kernel_initializer
    if name == "truncated_normal":
        return keras.initializers.TruncatedNormal(stddev=model_cfg.init_stddev)
    if name == "random_normal":
        return keras.initializers.RandomNormal(stddev=model_cfg.init_stddev)
    return keras.initializers.get(name)


def layer_args(model_cfg) -> dict:
    """Activation and initializers shared by every hidden layer of a model."""
    return dict(
        activation=model_cfg.activation,
        kernel_initializer=kernel_initializer(model_cfg),
        bias_initializer=keras.initializers.Constant(model_cfg.bias_init),
    )


def classifier(num_classes: int, args: dict):
    """The dense layer producing logits, initialised like the hidden layers."""
    return keras.layers.Dense(num_classes, name="classifier",
                              kernel_initializer=args["kernel_initializer"],
                              bias_initializer=args["bias_initializer"])


def input_projection(width: int, args: dict):
    """The dense layer from the input features to `width` units."""
    return keras.layers.Dense(width, name="input_projection", **args)


def spread_kinks(projection) -> None:
    """Start each unit's ReLU kink w.x + b = 0 at its own uniform random point of [-1, 1]^f.

    With one input feature and equal biases every kink would sit at one point, so the first
    layer starts linear on the input range (model.kinks in highway_study/config.py). The
    points are drawn like the weights: unseeded, made repeatable by keras.utils.set_random_seed.
    """
    kernel, bias = projection.get_weights()
    points = keras.initializers.RandomUniform(-1.0, 1.0)(kernel.shape)  # one column per unit
    projection.set_weights([kernel, -ops.sum(kernel * points, axis=0)])


def sequential(layers: list, name: str) -> keras.Sequential:
    """keras.Sequential of `layers`, with room for Keras's recursive mapping of deep graphs."""
    if len(layers) > 500:
        sys.setrecursionlimit(max(sys.getrecursionlimit(), 20 * len(layers)))
    return keras.Sequential(layers, name=name)
