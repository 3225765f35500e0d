"""Fully connected models: highway_fc, plain_fc, shallow and softmax.

Every one is: input projection (dense, `width` units) -> `depth` hidden layers of that
width -> dense classifier producing logits. Only the hidden layers differ:
- highway_fc: highway layers (a HighwayStack, or one HighwayDense per layer);
- plain_fc:   plain dense layers;
- shallow:    none (the projection is the one hidden layer).
`softmax` is softmax regression: the classifier on the raw input, no hidden layer at all.
"""

from __future__ import annotations

import keras

from highway_study.models.common import classifier, input_projection, layer_args, sequential
from highway_study.nn.highway import HighwayDense, HighwayStack


def build(cfg, num_features: int, num_classes: int, image_shape=None) -> keras.Sequential:
    mcfg = cfg.model
    args = layer_args(mcfg)
    layers = [keras.Input(shape=(num_features,))]
    if mcfg.name != "softmax":
        layers.append(input_projection(cfg.width, args))
        layers += hidden_layers(cfg, args)
    layers.append(classifier(num_classes, args))
    return sequential(layers, mcfg.name)


def hidden_layers(cfg, dense_args) -> list:
    name, depth = cfg.model.name, cfg.depth
    if name in ("shallow", "softmax"):
        return []
    if name == "plain_fc":
        return [keras.layers.Dense(cfg.width, name=f"plain_{i}", **dense_args)
                for i in range(depth)]
    highway_args = dict(dense_args, carry_bias=cfg.carry_bias)
    if cfg.model.implementation.startswith("scan"):  # scan, scan_xla, scan_native, ...
        method = "xla" if cfg.model.implementation == "scan" else "autodiff"
        return [HighwayStack(depth, name="highway_stack", method=method,
                             streams=cfg.model.streams, **highway_args)]
    return [HighwayDense(name=f"highway_{i}", **highway_args) for i in range(depth)]
