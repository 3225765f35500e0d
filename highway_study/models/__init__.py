"""Networks of the study, built from a config by the builder the catalog names.

`build_model` asks highway_study.catalog which module builds `cfg.model.name`; each builder
module has `build(cfg, num_features, num_classes, image_shape) -> keras.Sequential`.
"""

from __future__ import annotations

import importlib

from highway_study import catalog
from highway_study.models.common import spread_kinks
from highway_study.models.probes import count_params, gate_activity, gate_index, gate_layers

__all__ = ["build_model", "count_params", "gate_activity", "gate_index", "gate_layers"]


def build_model(cfg, num_features: int, num_classes: int, image_shape=None):
    """Build (and build the weights of) the model that `cfg` describes.

    `image_shape` (H, W, C) is how conv models view the flat input; others ignore it.
    """
    spec = catalog.spec(cfg.model.name)
    if not spec.builder:
        raise ValueError(f"model={cfg.model.name!r} is not in highway_study.catalog.")
    builder = importlib.import_module(f"highway_study.models.{spec.builder}")
    model = builder.build(cfg, num_features, num_classes, image_shape)
    if cfg.model.get("kinks", "bias_init") == "spread":
        spread_kinks(model.get_layer("input_projection"))
    return model
