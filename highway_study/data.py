"""Data sets as float32 arrays in [0, 1], with a seeded validation split.

The validation set is held out of the training set; the test set is only for final numbers.
Images are returned flat (N, features); `image_shape` says how to view them as images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from highway_study import mnist
from highway_study.idx import read_idx


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

    @property
    def num_features(self) -> int:
        return int(self.x_train.shape[1])


def load(data_cfg, seed: int) -> Dataset:
    """Load the data set named by `data_cfg.name`, split with `seed`."""
    loaders = {"mnist": _mnist, "digits": _digits, "synthetic": _synthetic}
    dataset = loaders[data_cfg.name](data_cfg, seed)
    if data_cfg.train_limit is not None:
        dataset.x_train = dataset.x_train[: data_cfg.train_limit]
        dataset.y_train = dataset.y_train[: data_cfg.train_limit]
    return dataset


def split(x, y, size: int, seed: int):
    """Return (x_rest, y_rest, x_held, y_held) with `size` examples held out at random."""
    if not 0 < size < len(x):
        raise ValueError(f"cannot hold out {size} of {len(x)} examples.")
    order = np.random.default_rng(seed).permutation(len(x))
    held, rest = order[:size], order[size:]
    return x[rest], y[rest], x[held], y[held]


def _mnist(cfg, seed: int) -> Dataset:
    files = mnist.locate(cfg.path, download=cfg.download)
    arrays = {name: read_idx(path) for name, path in files.items()}
    x_train = _images(arrays["train-images-idx3-ubyte"])
    y_train = arrays["train-labels-idx1-ubyte"].astype(np.int32)
    x_test = _images(arrays["t10k-images-idx3-ubyte"])
    y_test = arrays["t10k-labels-idx1-ubyte"].astype(np.int32)
    x_train, y_train, x_val, y_val = split(x_train, y_train, cfg.val_size, seed)
    return Dataset(x_train, y_train, x_val, y_val, x_test, y_test, 10, (28, 28, 1))


def _images(raw: np.ndarray) -> np.ndarray:
    return (raw.reshape(len(raw), -1) / 255.0).astype(np.float32)


def _digits(cfg, seed: int) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int32)
    return _three_way(x, y, cfg, seed, 10, (8, 8, 1))


def _synthetic(cfg, seed: int) -> Dataset:
    """Gaussian clusters, one per class, in [0, 1]: learnable in a few steps."""
    rng = np.random.default_rng(10_000 + seed)
    centers = rng.uniform(0.2, 0.8, size=(cfg.num_classes, cfg.num_features))
    y = rng.integers(0, cfg.num_classes, size=cfg.num_examples).astype(np.int32)
    x = centers[y] + rng.normal(0.0, 0.1, size=(cfg.num_examples, cfg.num_features))
    side = int(round(np.sqrt(cfg.num_features)))
    shape = (side, side, 1) if side * side == cfg.num_features else None
    return _three_way(np.clip(x, 0, 1).astype(np.float32), y, cfg, seed, cfg.num_classes, shape)


def _three_way(x, y, cfg, seed, num_classes, image_shape) -> Dataset:
    x_rest, y_rest, x_test, y_test = split(x, y, cfg.test_size, seed=12_345)
    x_train, y_train, x_val, y_val = split(x_rest, y_rest, cfg.val_size, seed)
    return Dataset(x_train, y_train, x_val, y_val, x_test, y_test, num_classes, image_shape)
