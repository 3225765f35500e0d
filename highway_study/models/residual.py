"""residual_fc: y = x + H(x) per layer, to show what the carry gate buys over a shortcut.

Input projection (dense, `width` units) -> `depth` residual layers of that width -> dense
classifier. It has no gate, so `carry_bias` means nothing to it; `model.branch_scale`
scales every branch.
"""

from __future__ import annotations

import keras

from highway_study.models.common import classifier, input_projection, layer_args, sequential
from highway_study.nn.residual import ResidualDense


def build(cfg, num_features: int, num_classes: int, image_shape=None) -> keras.Sequential:
    args = layer_args(cfg.model)
    layers = [keras.Input(shape=(num_features,)), input_projection(cfg.width, args)]
    layers += [ResidualDense(name=f"residual_{i}",
                             branch_scale=cfg.model.get("branch_scale", 1.0), **args) for i in range(cfg.depth)]
    layers.append(classifier(num_classes, args))
    return sequential(layers, cfg.model.name)
