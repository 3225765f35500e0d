"""Gaussian clusters, one per class, in [0, 1]: learnable in a few steps (for tests)."""

from __future__ import annotations

import numpy as np

from highway_study.data.dataset import Dataset, three_way


def load(cfg, seed: int) -> Dataset:
    rng = np.random.default_rng(10_000 + seed)
    centers = rng.uniform(0.2, 0.8, size=(cfg.num_classes, cfg.num_features))
    y = rng.integers(0, cfg.num_classes, size=cfg.num_examples).astype(np.int32)
    x = centers[y] + rng.normal(0.0, 0.1, size=(cfg.num_examples, cfg.num_features))
    side = int(round(np.sqrt(cfg.num_features)))
    shape = (side, side, 1) if side * side == cfg.num_features else None
    return three_way(np.clip(x, 0, 1).astype(np.float32), y, cfg, seed, cfg.num_classes, shape,
                     f"generated Gaussian clusters (seed {seed})")
