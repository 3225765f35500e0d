"""The depth separation of the tent task (highway_study.data.tent), as a number.

A leaf of the package (no TensorFlow, no data), so that the analysis judges runs by the
same bound the task's docstring proves.
"""

from __future__ import annotations


def shallow_bound(width: int, k: int) -> float:
    """The highest accuracy a one-hidden-layer ReLU net of `width` units can reach on the
    noiseless tent task of k compositions with the number alone, capped at 1: its logit
    difference has at most width + 1 linear pieces, so its prediction is constant on at
    most width + 2 intervals, each right on at most half of its length plus 2^-k."""
    return min(1.0, 0.5 + (width + 2) / 2 ** (k + 1))
