"""Pieces every builder shares: initializers, a hidden layer's arguments, the classifier."""

from __future__ import annotations

import sys

import keras


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


def sequential(layers: list, name: str) -> keras.Sequential:
    """keras.Sequential of `layers`, with room for Keras's recursive mapping of deep graphs."""
    if len(layers) > 500:
        sys.setrecursionlimit(max(sys.getrecursionlimit(), 20 * len(layers)))
    return keras.Sequential(layers, name=name)
