"""What epoch `epoch` of a run seeded `seed` draws: pure functions of (seed, epoch).

Nothing here depends on how many epochs this process has trained, so a run resumed after
epoch k sees exactly the batches and random numbers the uninterrupted run saw from epoch k+1
on, and several runs trained in one process never disturb each other's order.
"""

from __future__ import annotations

import math

import numpy as np

# Domain tags, so that the order of the examples and the layers' random seeds of one epoch
# are independent draws.
_ORDER, _LAYER_SEEDS = 0, 1


def epoch_order(seed: int, epoch: int, size: int) -> np.ndarray:
    """The indices 0..size-1 in the order epoch `epoch` (0-based) visits them."""
    return np.random.default_rng((seed, epoch, _ORDER)).permutation(size)


def layer_seeds(seed: int, epoch: int, count: int) -> np.ndarray:
    """`count` seeds in [0, 2**31) for the random layers (dropout) at the start of `epoch`."""
    return np.random.default_rng((seed, epoch, _LAYER_SEEDS)).integers(0, 2**31, size=count)


def epoch_batches(seed: int, epoch: int, size: int, batch_size: int) -> list[np.ndarray]:
    """The index arrays of epoch `epoch`'s batches, in `epoch_order` (the last one may be
    smaller): what a run alone's input pipeline yields, for a population member."""
    order = epoch_order(seed, epoch, size)
    return [order[i:i + batch_size] for i in range(0, size, batch_size)]


def steps_per_epoch(size: int, batch_size: int) -> int:
    return math.ceil(size / batch_size)
