"""Highway layers: y = H(x) * T(x) + x * (1 - T(x)), T = sigmoid(x W_T + b_T).

`b_T` starts at `carry_bias`: a negative value makes every layer begin by carrying its
input through, which is what lets very deep stacks train with plain SGD.

Two implementations of the same maths:
- `HighwayDense`, one Keras layer per highway layer (what a user writes first);
- `HighwayStack`, `depth` layers whose weights are stacked into one tensor and applied
  in one XLA-compiled loop (highway_study/nn/fast_stack.py), so
  that building costs the same at any depth and a step runs near the machine's speed.

Every highway layer (and the stack, per layer) exposes the same small gate interface, used
for gate-activity records and lesioning: `num_gates`, `gate_activity(x)`,
`get_transform_bias(i)` and `set_transform_bias(i, values)`.
"""

from __future__ import annotations

import copy

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from highway_study.nn import fast_stack
from highway_study.nn.base import ShapeKeepingLayer
from highway_study.nn.fast_stack import highway_combine
from highway_study.nn.gates import SingleGate, check_gate_index

STACK_METHODS = ("xla", "autodiff")


class HighwayLayer(ShapeKeepingLayer):
    """A ShapeKeepingLayer with a transform gate whose bias starts at `carry_bias`."""

    def __init__(self, carry_bias: float = -2.0, **kwargs):
        super().__init__(**kwargs)  # activation and initializers: ShapeKeepingLayer
        self.carry_bias = float(carry_bias)

    def get_config(self):
        config = super().get_config()
        config.update(carry_bias=self.carry_bias)
        return config


@keras.saving.register_keras_serializable(package="highway_study")
class HighwayDense(SingleGate, HighwayLayer):
    """A fully connected highway layer; its width is the width of its input."""

    def build(self, input_shape):
        width = int(input_shape[-1])
        self.kernel_h = self.add_weight(
            name="kernel_h", shape=(width, width), initializer=self.kernel_initializer
        )
        self.bias_h = self.add_weight(
            name="bias_h", shape=(width,), initializer=self.bias_initializer
        )
        self.kernel_t = self.add_weight(
            name="kernel_t", shape=(width, width), initializer=self.kernel_initializer
        )
        self.bias_t = self.add_weight(
            name="bias_t",
            shape=(width,),
            initializer=keras.initializers.Constant(self.carry_bias),
        )

    def transform_gate(self, x):
        """T(x), the share of the transformed signal in the output (0 = pure carry)."""
        return ops.sigmoid(ops.matmul(x, self.kernel_t) + self.bias_t)

    def call(self, x, training=None):
        h = self.activation(ops.matmul(x, self.kernel_h) + self.bias_h)
        return highway_combine(x, h, self.transform_gate(x))


@keras.saving.register_keras_serializable(package="highway_study")
class HighwayStack(HighwayLayer):
    """`depth` highway layers of one width, stacked as kernel [depth, width, 2*width].

    Columns [:width] of each slice are H's weights, [width:] the transform gate's. One loop
    applies the layers in order, so graph size, build and trace time do not grow with depth.
    `method` picks how the loop runs and is differentiated:
    - "xla" (default): an XLA-compiled loop with a hand-written, XLA-compiled gradient
      (highway_study.nn.fast_stack), run as `streams` loops side by side on slices of the
      batch (None: 2 where TensorFlow has two inter-op threads, else 1);
    - "autodiff": tf.foldl in TensorFlow's graph executor, differentiated by TensorFlow
      (kept as the plain baseline of the benchmark).
    """

    def __init__(self, depth: int, method: str = "xla", streams: int | None = None, **kwargs):
        super().__init__(**kwargs)  # activation, carry_bias, initializers: HighwayLayer
        if streams is not None and int(streams) < 1:
            raise ValueError(f"HighwayStack streams must be >= 1 or None (auto), got {streams}.")
        if int(depth) < 1:
            raise ValueError(f"HighwayStack depth must be >= 1, got {depth}.")
        if method not in STACK_METHODS:
            raise ValueError(
                f"HighwayStack method={method!r} is not allowed: use one of "
                f"{', '.join(STACK_METHODS)}."
            )
        self.depth = int(depth)
        self.method = method
        self.streams = None if streams is None else int(streams)

    def build(self, input_shape):
        width = int(input_shape[-1])
        self.width = width
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.depth, width, 2 * width),
            initializer=self._per_layer_kernel_initializer,
        )
        self.bias = self.add_weight(
            name="bias",
            shape=(self.depth, 2 * width),
            initializer=self._per_layer_bias_initializer,
        )

    def _per_layer_kernel_initializer(self, shape, dtype=None):
        # Each [width, width] block gets the fan-in/fan-out of one layer, exactly as the
        # layer-by-layer stack would; initialising the 3-D tensor at once would not.
        depth, width, _ = shape
        blocks = _per_block_draws(self.kernel_initializer, (2 * depth, width, width), dtype)
        if blocks is None:  # an initializer that needs one call per block (e.g. orthogonal)
            blocks = ops.stack([self.kernel_initializer((width, width), dtype=dtype)
                                for _ in range(2 * depth)])
        # [2*depth, w, w] -> [depth, w, 2w]: block 2i is layer i's H, block 2i+1 its T.
        blocks = ops.reshape(blocks, (depth, 2, width, width))
        return ops.reshape(ops.transpose(blocks, (0, 2, 1, 3)), (depth, width, 2 * width))

    def _per_layer_bias_initializer(self, shape, dtype=None):
        depth, twice_width = shape
        width = twice_width // 2
        bias_h = ops.stack([self.bias_initializer((width,), dtype=dtype) for _ in range(depth)])
        bias_t = ops.full((depth, width), self.carry_bias, dtype=dtype)
        return ops.concatenate([bias_h, bias_t], axis=1)

    def _weights(self):
        return tf.convert_to_tensor(self.kernel), tf.convert_to_tensor(self.bias)

    def call(self, x, training=None):
        kernel, bias = self._weights()
        if self.method == "xla":
            return fast_stack.highway_stack(
                x, kernel, bias, self.activation, training=training is not False,
                streams=self.streams,
            )

        def step(x, weights):
            pre = tf.matmul(x, weights[0]) + weights[1]
            h, t = fast_stack._gates(pre, self.activation)
            return highway_combine(x, h, t)

        return tf.foldl(step, (kernel, bias), initializer=x)

    # -- gate interface -------------------------------------------------------
    @property
    def num_gates(self) -> int:
        return self.depth

    def gate_activity(self, x) -> np.ndarray:
        """Mean transform-gate value of every layer (over batch and units), shape [depth]."""
        x = tf.convert_to_tensor(x, dtype=self.kernel.dtype)
        return np.asarray(fast_stack.gate_means(x, *self._weights(), self.activation))

    def get_transform_bias(self, index: int) -> np.ndarray:
        check_gate_index(index, self.depth)
        return np.array(self.bias.numpy()[index, self.width :])

    def set_transform_bias(self, index: int, values) -> None:
        check_gate_index(index, self.depth)
        bias = np.array(self.bias.numpy())
        bias[index, self.width :] = values
        self.bias.assign(bias)

    def get_config(self):
        config = super().get_config()
        config.update(depth=self.depth, method=self.method, streams=self.streams)
        return config


def _per_block_draws(initializer, shape, dtype):
    """All [w, w] blocks of `shape` drawn in one call, each as if it were one layer's kernel.

    None when the initializer cannot do that. Why it works: Keras computes the fans of a
    3-D shape [n, w, w] as n*w; a VarianceScaling initializer with its scale times n then
    draws with exactly the variance scale/w of a single [w, w] kernel (one call instead of
    2 * depth keeps building a 1000-layer stack fast).
    """
    if isinstance(initializer, keras.initializers.VarianceScaling):
        scaled = copy.copy(initializer)
        scaled.scale = initializer.scale * shape[0]
        return scaled(shape, dtype=dtype)
    elementwise = (keras.initializers.RandomNormal, keras.initializers.RandomUniform,
                   keras.initializers.TruncatedNormal, keras.initializers.Constant,
                   keras.initializers.Zeros, keras.initializers.Ones)
    if isinstance(initializer, elementwise):
        return initializer(shape, dtype=dtype)
    return None
