"""Reading a built model's transform gates through the gate interface of highway_study.nn.

Any layer with `gate_activity` counts: the probes never ask which model they are given.
"""

from __future__ import annotations

import numpy as np


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
