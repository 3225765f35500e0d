"""Convolutional models (`highway_conv`, `plain_conv`) as keras.Sequential.

Flat input -> reshape to the data's image shape -> first convolution to `width` channels
(the input projection) -> `depth` highway (or plain) convolutions of `width` channels, each
optionally followed by 2x2 max-pooling (`model.pool_after`) -> a readout (flatten or global
average pooling) -> dense classifier producing logits. `model.dropout` is applied after every
pooling layer and before the classifier. For conv models `width` is the number of channels
(the paper's "width" of a conv highway net is its number of filter maps).
"""

from __future__ import annotations

import keras

from highway_study.config import ConfigError
from highway_study.models.common import classifier, layer_args, sequential
from highway_study.nn.conv import HighwayConv2D


def build(cfg, num_features: int, num_classes: int, image_shape) -> keras.Sequential:
    """Build the conv model that `cfg` describes for images of `image_shape` (H, W, C)."""
    mcfg = cfg.model
    image_shape = _checked_image_shape(cfg, num_features, image_shape)
    conv_args = layer_args(mcfg)
    layers = [
        keras.Input(shape=(num_features,)),
        keras.layers.Reshape(image_shape, name="to_image"),
        keras.layers.Conv2D(cfg.width, mcfg.kernel_size, padding="same",
                            name="input_projection", **conv_args),
    ]
    pool_after = set(mcfg.pool_after)
    for i in range(cfg.depth):
        layers.append(_hidden_layer(cfg, i, conv_args))
        if i in pool_after:
            layers.append(keras.layers.MaxPooling2D(2, name=f"pool_{i}"))
            layers += _dropout(mcfg.dropout, f"dropout_{i}")
    layers.append(keras.layers.Flatten(name="flatten") if mcfg.readout == "flatten"
                  else keras.layers.GlobalAveragePooling2D(name="global_average"))
    layers += _dropout(mcfg.dropout, "dropout_readout")
    layers.append(classifier(num_classes, conv_args))
    return sequential(layers, mcfg.name)


def _hidden_layer(cfg, index: int, conv_args):
    if cfg.model.name == "plain_conv":
        return keras.layers.Conv2D(cfg.width, cfg.model.kernel_size, padding="same",
                                   name=f"plain_{index}", **conv_args)
    return HighwayConv2D(cfg.model.kernel_size, carry_bias=cfg.carry_bias,
                         name=f"highway_{index}", **conv_args)


def _dropout(rate: float, name: str) -> list:
    return [keras.layers.Dropout(rate, name=name)] if rate > 0 else []


def _checked_image_shape(cfg, num_features: int, image_shape) -> tuple:
    """The image shape, or ConfigError when the data has none or pooling empties it."""
    if image_shape is None:
        raise ConfigError(
            f"data={cfg.data.name} with {num_features} features has no image shape, which "
            f"model={cfg.model.name} needs: use data=mnist, data=digits, or data=synthetic "
            "with a square data.num_features (for example 64)."
        )
    height, width = int(image_shape[0]), int(image_shape[1])
    pools = len(set(cfg.model.pool_after))
    if height >> pools < 1 or width >> pools < 1:
        raise ConfigError(
            f"model.pool_after={list(cfg.model.pool_after)} halves the {height}x{width} images "
            f"of data={cfg.data.name} {pools} times, down to nothing: use at most "
            f"{min(height, width).bit_length() - 1} pooling positions."
        )
    return tuple(int(d) for d in image_shape)
