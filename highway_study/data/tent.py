"""`tent`: a classification task that needs depth, generated in memory.

The tent map t(s) = 2s for s < 1/2, 2 - 2s otherwise, composed k times, has 2^(k-1) teeth
on [0, 1]; an example's label says whether t^k(s) >= 1/2. A ReLU net of width 2 and depth
k computes t^k exactly (each t is 2 relu(s) - 4 relu(s - 1/2) on [0, 1]), while a net with
one hidden layer needs about 2^k units to cut [0, 1] into the 2^k pieces where the label
flips (Telgarsky, "Benefits of depth in neural networks", COLT 2016, and "Representation
benefits of deep feedforward networks", 2015). So at fixed width 50, a k above
log2(50) ~ 5.6 puts the task out of a shallow net's reach but not of a deep one's.

The one informative number s ~ U[0, 1] is hidden among `num_features - 1` uniform noise
features by a fixed random rotation (from `generator_seed`), then mapped back into
[0, 1]: the network has to find the direction first, as a layer of a real net would.
`noise` flips that share of the labels; `centred` moves the inputs to [-1, 1]. Since t^k
maps U[0, 1] onto U[0, 1], the classes are balanced.

Depth separation at width W: a net with one hidden ReLU layer
of W units on one input computes a logit difference that is piecewise linear with at most
W + 1 pieces, so its prediction changes sign at most W + 1 times and is constant on at
most W + 2 intervals. The labels alternate on 2^k intervals of length 2^-k, so on any
interval the two classes differ by at most 2^-k in length: such a net is right on at most
1/2 + (W + 2) / 2^(k+1) of the inputs (highway_study.separation.shallow_bound). A deep net
of width >= 2 and depth >= k is exact.
"""

from __future__ import annotations

import numpy as np

from highway_study.data.dataset import Dataset, three_way


def tent(s: np.ndarray, k: int) -> np.ndarray:
    """t^k(s), the tent map composed k times."""
    for _ in range(k):
        s = np.where(s < 0.5, 2.0 * s, 2.0 - 2.0 * s)
    return s


def rotation(features: int, generator_seed: int) -> np.ndarray:
    """The fixed random orthogonal matrix that hides s among the noise features."""
    q, r = np.linalg.qr(np.random.default_rng([generator_seed, 1]).normal(size=(features,) * 2))
    return q * np.sign(np.diag(r))  # a uniformly random rotation, not QR's sign convention


def generate(k: int, examples: int, features: int, noise: float, generator_seed: int,
             centred: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, labels, s): the same arrays for the same arguments.

    x is in [0, 1]^features, or in [-1, 1]^features around 0 when `centred` (where a
    layer's kinks, spread over [-1, 1], can cut the input's range: model.kinks=spread).
    """
    rng = np.random.default_rng([generator_seed, 0])
    s = rng.uniform(0.0, 1.0, examples)
    labels = (tent(s, k) >= 0.5).astype(np.int32)
    flip = rng.uniform(size=examples) < noise
    labels = np.where(flip, 1 - labels, labels).astype(np.int32)
    hidden = np.column_stack([s, rng.uniform(0.0, 1.0, (examples, features - 1))])
    # Centred coordinates, rotated, then scaled back into [0, 1] (|rotated| <= sqrt(f) / 2).
    rotated = (hidden - 0.5) @ rotation(features, generator_seed).T
    x = 2.0 * rotated / np.sqrt(features) if centred else rotated / np.sqrt(features) + 0.5
    return x.astype(np.float32), labels, s


def load(cfg, seed: int) -> Dataset:
    x, y, _ = generate(cfg.k, cfg.num_examples, cfg.num_features, cfg.noise,
                       cfg.generator_seed, cfg.get("centred", False))
    return three_way(x, y, cfg, seed, 2, None,
                     f"generated in memory (tent k={cfg.k}, generator_seed={cfg.generator_seed})")
