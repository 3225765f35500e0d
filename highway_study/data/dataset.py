"""The shape every data set takes: float32 arrays in [0, 1] with seeded splits.

The validation set is held out of the training set; the test set is only for final numbers.
Images are returned flat (N, features); `image_shape` says how to view them as images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TEST_SPLIT_SEED = 12_345  # the test set of a data set without one is the same for every seed


class DataError(ValueError):
    """Data that cannot be used as configured (too small a split, files that do not belong
    together); the message is one sentence naming the value or file and what would work."""


@dataclass
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    # (height, width, channels) for image data; None for plain feature vectors.
    image_shape: tuple | None = None
    # Where the examples came from, for the log and the run record (MNIST: the folder read).
    source: str | None = None

    @property
    def num_features(self) -> int:
        return int(self.x_train.shape[1])


def split(x, y, size: int, seed: int, key: str = "size"):
    """Return (x_rest, y_rest, x_held, y_held) with `size` examples held out at random.

    `key` names the config value `size` came from, for the error when it does not fit.
    """
    if not 0 < size < len(x):
        raise DataError(
            f"{key}={size} is not allowed for these data: only {len(x)} examples are left to "
            f"split, so use a value from 1 to {len(x) - 1}."
        )
    order = np.random.default_rng(seed).permutation(len(x))
    held, rest = order[:size], order[size:]
    return x[rest], y[rest], x[held], y[held]


def three_way(x, y, cfg, seed: int, num_classes: int, image_shape, source=None) -> Dataset:
    """Test set (`cfg.test_size`, the same for every seed), then validation (`cfg.val_size`,
    drawn with `seed`), the rest for training."""
    x_rest, y_rest, x_test, y_test = split(x, y, cfg.test_size, TEST_SPLIT_SEED, "data.test_size")
    x_train, y_train, x_val, y_val = split(x_rest, y_rest, cfg.val_size, seed, "data.val_size")
    return Dataset(x_train, y_train, x_val, y_val, x_test, y_test, num_classes, image_shape,
                   source)
