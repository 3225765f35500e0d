"""The tent-map data set: shapes, determinism, balance, and the depth that solves it."""

from __future__ import annotations

import numpy as np
import pytest

from compose import compose_config
from highway_study import data
from highway_study.config import ConfigError, validate
from highway_study.data import tent
from highway_study.separation import shallow_bound


def test_examples_have_the_configured_shape_and_stay_in_the_unit_cube():
    x, y, s = tent.generate(k=6, examples=5000, features=12, noise=0.0, generator_seed=3)
    assert x.shape == (5000, 12) and x.dtype == np.float32 and y.shape == (5000,)
    assert x.min() >= 0.0 and x.max() <= 1.0 and set(np.unique(y)) == {0, 1}
    assert ((s >= 0) & (s <= 1)).all()


def test_the_same_seed_gives_the_same_task_and_another_seed_another():
    a = tent.generate(8, 1000, 16, 0.1, generator_seed=0)
    b = tent.generate(8, 1000, 16, 0.1, generator_seed=0)
    c = tent.generate(8, 1000, 16, 0.1, generator_seed=1)
    for left, right in zip(a, b):
        np.testing.assert_array_equal(left, right)
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("k", [1, 4, 8, 12])
def test_labels_are_balanced_within_two_points(k):
    """t^k maps U[0,1] onto U[0,1], so half the labels are 1 (20,000 draws: sd 0.35 points)."""
    _, y, _ = tent.generate(k, 20_000, 8, 0.0, generator_seed=k)
    assert abs(y.mean() - 0.5) < 0.02


def test_noise_flips_that_share_of_the_labels():
    _, clean, _ = tent.generate(8, 20_000, 8, 0.0, generator_seed=5)
    _, noisy, _ = tent.generate(8, 20_000, 8, 0.2, generator_seed=5)
    assert abs((clean != noisy).mean() - 0.2) < 0.02


def hand_built_deep_relu_net(x, k, features, generator_seed):
    """Depth k, width 2: undo the rotation (one linear layer), then k ReLU tent layers."""
    q = tent.rotation(features, generator_seed)
    s = ((x.astype(np.float64) - 0.5) * np.sqrt(features)) @ q[:, 0] + 0.5  # linear layer
    for _ in range(k):  # t(s) = 2 relu(s) - 4 relu(s - 1/2) on [0, 1]
        s = 2.0 * np.maximum(s, 0.0) - 4.0 * np.maximum(s - 0.5, 0.0)
    return (s >= 0.5).astype(np.int32)


@pytest.mark.parametrize("k", [3, 8, 10])
def test_a_relu_net_of_depth_k_and_width_2_classifies_it_perfectly(k):
    x, y, s = tent.generate(k, 20_000, 16, 0.0, generator_seed=2)
    # Away from the 2^k points where the label flips, float32 inputs cannot blur the label.
    margin = np.abs(tent.tent(s, k) - 0.5) > 1e-3
    predicted = hand_built_deep_relu_net(x, k, 16, generator_seed=2)
    assert (predicted[margin] == y[margin]).all() and margin.mean() > 0.99


def test_the_tent_config_composes_validates_and_loads_three_splits():
    cfg = compose_config("data=tent", "data.num_examples=3000", "data.val_size=300",
                         "data.test_size=600")
    validate(cfg)
    ds = data.load(cfg.data, seed=0)
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (2100, 300, 600)
    assert ds.num_classes == 2 and ds.num_features == 1 and cfg.batch_size == 50
    assert ds.source == "generated in memory (tent k=4, generator_seed=0)"  # logged, recorded


def test_centred_inputs_fill_minus_one_to_one_with_the_same_labels():
    plain, labels, s = tent.generate(5, 4000, 1, 0.0, generator_seed=4)
    centred, same_labels, _ = tent.generate(5, 4000, 1, 0.0, generator_seed=4, centred=True)
    np.testing.assert_array_equal(labels, same_labels)
    np.testing.assert_allclose(centred, 2.0 * plain - 1.0, atol=1e-6)
    assert centred.min() < -0.99 and centred.max() > 0.99


def best_piecewise_constant_accuracy(k: int, pieces: int) -> float:
    """Brute force over predictors constant on `pieces` intervals with change points on a
    grid 4x finer than the label's intervals: the best share of [0, 1] they label right."""
    grid = 2 ** (k + 2)
    labels = (tent.tent((np.arange(grid) + 0.5) / grid, k) >= 0.5).astype(int)
    # Dynamic programme over the cells: (changes so far, current label) -> most cells right.
    right = {(0, 0): 0, (0, 1): 0}  # (changes, current label) -> cells right so far
    for cell in range(grid):
        step = {}
        for (changes, label), score in right.items():
            for new in (label, 1 - label):
                c = changes + (new != label and cell > 0)
                if c <= pieces - 1:
                    key = (c, new)
                    step[key] = max(step.get(key, -1), score + (labels[cell] == new))
        right = step
    return max(right.values()) / grid


@pytest.mark.parametrize("width, k", [(2, 3), (4, 4), (6, 5), (16, 6)])
def test_no_shallow_net_of_that_width_beats_the_bound(width, k):
    """A width-W shallow net's prediction is constant on at most W + 2 intervals; the best
    such predictor (searched exhaustively) reaches the bound and no more."""
    best = best_piecewise_constant_accuracy(k, width + 2)
    assert best <= shallow_bound(width, k) + 1e-12
    assert best >= shallow_bound(width, k) - 2 ** -(k + 1)  # the bound is nearly tight


@pytest.mark.parametrize("override, message", [
    ("data.noise=0.5", "data.noise=0.5 is not allowed"),
    ("data.k=0", "data.k=0 is not allowed"),
    ("data.generator_seed=-1", "data.generator_seed=-1 is not allowed"),
])
def test_bad_tent_knobs_end_in_one_sentence(override, message):
    with pytest.raises(ConfigError, match=message) as error:
        validate(compose_config("data=tent", override))
    assert "\n" not in str(error.value)
