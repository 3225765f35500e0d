"""scikit-learn's bundled 8x8 digits (1,797 images): real digits, offline."""

from __future__ import annotations

import numpy as np

from highway_study.data.dataset import Dataset, three_way


def load(cfg, seed: int) -> Dataset:
    from sklearn.datasets import load_digits  # only this data set needs scikit-learn

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int32)
    return three_way(x, y, cfg, seed, 10, (8, 8, 1),
                     "scikit-learn's bundled digits (sklearn.datasets.load_digits)")
