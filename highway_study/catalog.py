"""The one table that says what each model is.

Config checks, the model builders and the analysis all ask this table, never the model's
name: a new model is one builder module, one YAML file in conf/model/ and one entry here.
Imports nothing heavy, so the analysis can use it without TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

FAMILIES = ("plain", "highway", "residual", "shallow", "softmax")  # the order tables show


@dataclass(frozen=True)
class ModelSpec:
    """What a model is.

    family:      what the study compares (highway, plain, residual, shallow, softmax);
    layout:      "dense" (flat features) or "conv" (needs an image shape);
    gated:       has transform gates (gate records, lesioning, effective depth);
    fixed_depth: the only depth the structure allows, with a phrase saying why, or None;
    builder:     the module in highway_study.models whose `build(cfg, features, classes,
                 image_shape)` makes it.
    """

    name: str
    family: str
    layout: str
    gated: bool
    builder: str
    fixed_depth: tuple[int, str] | None = None


MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (
    ModelSpec("highway_fc", "highway", "dense", gated=True, builder="dense"),
    ModelSpec("plain_fc", "plain", "dense", gated=False, builder="dense"),
    ModelSpec("residual_fc", "residual", "dense", gated=False, builder="residual"),
    ModelSpec("shallow", "shallow", "dense", gated=False, builder="dense",
              fixed_depth=(1, "exactly one hidden layer")),
    ModelSpec("softmax", "softmax", "dense", gated=False, builder="dense",
              fixed_depth=(0, "no hidden layer")),
    ModelSpec("highway_conv", "highway", "conv", gated=True, builder="conv"),
    ModelSpec("plain_conv", "plain", "conv", gated=False, builder="conv"),
)}

# A model name the catalog does not know (a record written by a newer or forked version).
UNKNOWN = ModelSpec("unknown", "unknown", "dense", gated=False, builder="")


def spec(name) -> ModelSpec:
    """The catalog entry of `name`, or UNKNOWN (never raises: old records must stay readable)."""
    return MODELS.get(str(name), UNKNOWN)


def names(layout: str | None = None) -> tuple[str, ...]:
    """Every model name, or those of one layout ("dense" or "conv")."""
    return tuple(n for n, s in MODELS.items() if layout is None or s.layout == layout)


def family(name) -> str:
    return spec(name).family


def is_gated(name) -> bool:
    return spec(name).gated
