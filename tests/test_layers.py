"""HighwayDense and HighwayStack against an independent NumPy reference."""

import keras
import numpy as np
import pytest

from highway_study.nn.highway import HighwayDense, HighwayStack
from highway_study.nn.residual import ResidualDense


def numpy_highway(x, w_h, b_h, w_t, b_t):
    h = np.maximum(x @ w_h + b_h, 0.0)
    t = 1.0 / (1.0 + np.exp(-(x @ w_t + b_t)))
    return h * t + x * (1.0 - t), t


def random_weights(rng, width, carry_bias):
    return (rng.normal(0, 0.3, (width, width)).astype(np.float32),
            rng.normal(0, 0.1, width).astype(np.float32),
            rng.normal(0, 0.3, (width, width)).astype(np.float32),
            np.full(width, carry_bias, np.float32))


def built_dense(weights, carry_bias=-2.0):
    layer = HighwayDense(carry_bias=carry_bias)
    layer.build((None, weights[0].shape[0]))
    layer.set_weights(list(weights))
    return layer


def test_highway_dense_matches_numpy_reference():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 7)).astype(np.float32)
    weights = random_weights(rng, 7, -1.5)
    expected, _ = numpy_highway(x, *weights)
    np.testing.assert_allclose(built_dense(weights)(x), expected, rtol=1e-5, atol=1e-6)


def test_carry_bias_initialises_transform_gate_bias():
    layer = HighwayDense(carry_bias=-3)
    layer.build((None, 4))
    np.testing.assert_array_equal(layer.bias_t.numpy(), np.full(4, -3.0))
    assert layer.get_config()["carry_bias"] == -3.0


@pytest.mark.parametrize("carry_bias, expect", [(-20.0, "x"), (20.0, "h")])
def test_extreme_carry_bias_carries_or_transforms(carry_bias, expect):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 6)).astype(np.float32)
    weights = random_weights(rng, 6, carry_bias)
    weights = weights[:2] + (np.zeros_like(weights[2]),) + weights[3:]  # T depends on b_T only
    y = np.asarray(built_dense(weights, carry_bias)(x))
    h = np.maximum(x @ weights[0] + weights[1], 0.0)
    np.testing.assert_allclose(y, x if expect == "x" else h, atol=1e-6)


def test_gate_activity_is_mean_transform_gate():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(8, 5)).astype(np.float32)
    weights = random_weights(rng, 5, -1.0)
    _, t = numpy_highway(x, *weights)
    activity = built_dense(weights).gate_activity(x)
    np.testing.assert_allclose(activity, [t.mean()], rtol=1e-5)


def test_highway_dense_round_trips_through_config():
    layer = HighwayDense(activation="tanh", carry_bias=-7.0, name="hw")
    clone = HighwayDense.from_config(layer.get_config())
    assert clone.carry_bias == -7.0 and clone.activation is keras.activations.tanh


def stack_from_layers(layer_weights, carry_bias):
    depth, width = len(layer_weights), layer_weights[0][0].shape[0]
    stack = HighwayStack(depth, carry_bias=carry_bias)
    stack.build((None, width))
    kernel = np.stack([np.concatenate([w_h, w_t], axis=1) for w_h, _, w_t, _ in layer_weights])
    bias = np.stack([np.concatenate([b_h, b_t]) for _, b_h, _, b_t in layer_weights])
    stack.set_weights([kernel, bias])
    return stack


def test_scanned_stack_equals_layer_by_layer_stack():
    rng = np.random.default_rng(3)
    width, depth = 6, 9
    layer_weights = [random_weights(rng, width, -1.0) for _ in range(depth)]
    x = rng.normal(size=(4, width)).astype(np.float32)
    expected, expected_gates = x, []
    for weights in layer_weights:
        layer = built_dense(weights, -1.0)
        expected_gates.append(float(layer.gate_activity(expected)[0]))
        expected = layer(expected)
    stack = stack_from_layers(layer_weights, -1.0)
    np.testing.assert_allclose(stack(x), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stack.gate_activity(x), expected_gates, rtol=1e-5)


def test_stack_initialises_each_layer_like_a_single_layer():
    stack = HighwayStack(40, carry_bias=-5.0, kernel_initializer="glorot_uniform")
    stack.build((None, 30))
    kernel, bias = stack.get_weights()
    limit = np.sqrt(6.0 / (30 + 30))  # Glorot for one 30x30 block, not the 3-D tensor
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.9 * limit
    np.testing.assert_array_equal(bias[:, 30:], -5.0)
    np.testing.assert_array_equal(bias[:, :30], 0.0)


def test_stack_transform_bias_access_and_bounds():
    stack = HighwayStack(3, carry_bias=-2.0)
    stack.build((None, 4))
    stack.set_transform_bias(1, 7.0)
    np.testing.assert_array_equal(stack.get_transform_bias(1), np.full(4, 7.0))
    np.testing.assert_array_equal(stack.get_transform_bias(0), np.full(4, -2.0))
    with pytest.raises(IndexError, match="out of range"):
        stack.get_transform_bias(3)


def test_residual_dense_matches_numpy_reference_and_round_trips_its_config():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 6)).astype(np.float32)
    kernel = rng.normal(0, 0.3, (6, 6)).astype(np.float32)
    bias = rng.normal(0, 0.1, 6).astype(np.float32)
    layer = ResidualDense(activation="tanh")
    layer.build((None, 6))
    layer.set_weights([kernel, bias])
    np.testing.assert_allclose(layer(x), x + np.tanh(x @ kernel + bias), rtol=1e-5, atol=1e-6)
    clone = ResidualDense.from_config(layer.get_config())
    assert keras.activations.serialize(clone.activation) == "tanh"
    scaled = ResidualDense(activation="tanh", branch_scale=0.25)
    scaled.build((None, 6))
    scaled.set_weights([kernel, bias])
    np.testing.assert_allclose(scaled(x), x + 0.25 * np.tanh(x @ kernel + bias),
                               rtol=1e-5, atol=1e-6)
    assert ResidualDense.from_config(scaled.get_config()).branch_scale == 0.25
