"""Networks of the study, built from a config as keras.Sequential models.

Every model is: input projection (dense, `width` units) -> `depth` hidden layers of that
width -> dense classifier producing logits. Only the hidden layers differ:
- highway_fc: highway layers (a HighwayStack, or one HighwayDense per layer);
- plain_fc:   plain dense layers;
- shallow:    none (the projection is the one hidden layer).
`softmax` is softmax regression: the classifier on the raw input, no hidden layer at all.
"""

from __future__ import annotations

import sys

import keras
import numpy as np

from highway_study.layers import HighwayDense, HighwayStack


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


def build_model(cfg, num_features: int, num_classes: int,
                image_shape=None) -> keras.Sequential:
    """Build (and build the weights of) the model that `cfg` describes.

    `image_shape` (H, W, C) is how conv models view the flat input; others ignore it.
    """
    from highway_study.conv_models import CONV_MODELS, build_conv_model

    if cfg.model.name in CONV_MODELS:
        return build_conv_model(cfg, num_features, num_classes, image_shape)
    mcfg = cfg.model
    dense_args = layer_args(mcfg)
    layers = [keras.Input(shape=(num_features,))]
    if mcfg.name != "softmax":
        layers.append(keras.layers.Dense(cfg.width, name="input_projection", **dense_args))
        layers += hidden_layers(cfg, dense_args)
    layers.append(classifier(num_classes, dense_args))
    if len(layers) > 500:  # Keras maps deep graphs recursively
        sys.setrecursionlimit(max(sys.getrecursionlimit(), 20 * len(layers)))
    return keras.Sequential(layers, name=mcfg.name)


def hidden_layers(cfg, dense_args) -> list:
    name, depth = cfg.model.name, cfg.depth
    if name == "shallow":
        return []
    if name == "plain_fc":
        return [keras.layers.Dense(cfg.width, name=f"plain_{i}", **dense_args)
                for i in range(depth)]
    highway_args = dict(dense_args, carry_bias=cfg.carry_bias)
    if cfg.model.implementation in ("scan", "scan_autodiff"):
        method = "xla" if cfg.model.implementation == "scan" else "autodiff"
        return [HighwayStack(depth, name="highway_stack", method=method,
                             streams=cfg.model.streams, **highway_args)]
    return [HighwayDense(name=f"highway_{i}", **highway_args) for i in range(depth)]


def gate_layers(model) -> list:
    """The layers of `model` that have transform gates, in order."""
    return [layer for layer in model.layers if hasattr(layer, "gate_activity")]


def gate_activity(model, x) -> list[float]:
    """Mean transform-gate value of every highway layer on the batch `x` (empty if none)."""
    activity = []
    h = x
    for layer in model.layers:
        if hasattr(layer, "gate_activity"):
            activity.extend(float(v) for v in layer.gate_activity(h))
        h = layer(h)
    return activity


def gate_index(model) -> list[tuple]:
    """(layer, index within layer) for every gate in order: how lesioning addresses them."""
    return [(layer, i) for layer in gate_layers(model) for i in range(layer.num_gates)]


def count_params(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.weights))
