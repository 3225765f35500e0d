"""The order in which a run sees its training examples: a pure function of (seed, epoch).

Because nothing else decides it, a resumed run sees exactly the batches the uninterrupted
run would have seen, and a member of a population sees exactly those of the same
configuration trained alone.
"""

from __future__ import annotations

import numpy as np


def epoch_permutation(seed: int, epoch: int, size: int) -> np.ndarray:
    """The permutation of `size` training examples for 0-based `epoch` of a run seeded `seed`."""
    return np.random.default_rng([seed, epoch]).permutation(size)


def epoch_batches(seed: int, epoch: int, size: int, batch_size: int) -> list[np.ndarray]:
    """The index arrays of the epoch's batches, in order (the last one may be smaller)."""
    order = epoch_permutation(seed, epoch, size)
    return [order[i:i + batch_size] for i in range(0, size, batch_size)]
