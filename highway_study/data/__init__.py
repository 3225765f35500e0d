"""Data sets by name: each module's `load(data_cfg, seed) -> Dataset`.

A new data set is one module here, one entry in LOADERS and one YAML file in conf/data/.
"""

from __future__ import annotations

from highway_study.data import digits, mnist, synthetic, tent
from highway_study.data.dataset import Dataset

LOADERS = {
    "mnist": mnist.load, "digits": digits.load, "synthetic": synthetic.load, "tent": tent.load,
}

__all__ = ["Dataset", "LOADERS", "load"]


def load(data_cfg, seed: int) -> Dataset:
    """Load the data set named by `data_cfg.name`, split with `seed`."""
    dataset = LOADERS[data_cfg.name](data_cfg, seed)
    if data_cfg.train_limit is not None:
        dataset.x_train = dataset.x_train[: data_cfg.train_limit]
        dataset.y_train = dataset.y_train[: data_cfg.train_limit]
    return dataset
