"""The gate interface every highway layer offers; gate records and lesioning use only this.

`num_gates`, `gate_activity(x)` (mean transform-gate value per gate), and
`get_transform_bias(i)` / `set_transform_bias(i, values)` (lesioning shuts a gate this way).
"""

from __future__ import annotations

import numpy as np
from keras import ops


class SingleGate:
    """Mixin for a layer with one transform gate: needs `transform_gate(x)` and `bias_t`."""

    num_gates = 1

    def gate_activity(self, x) -> np.ndarray:
        """Mean transform-gate value over every axis, as a 1-element array."""
        return np.array([float(ops.mean(self.transform_gate(x)))])

    def get_transform_bias(self, index: int = 0) -> np.ndarray:
        check_gate_index(index, 1)
        return np.array(self.bias_t.numpy())

    def set_transform_bias(self, index: int, values) -> None:
        check_gate_index(index, 1)
        self.bias_t.assign(np.broadcast_to(values, self.bias_t.shape))


def check_gate_index(index: int, count: int) -> None:
    if not 0 <= index < count:
        raise IndexError(f"gate index {index} is out of range: this layer has {count} gate(s).")
