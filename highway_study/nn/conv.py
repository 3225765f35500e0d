"""Convolutional highway layer: y = H(x) * T(x) + x * (1 - T(x)) on feature maps.

H and T are convolutions with SAME padding and as many output channels as input channels,
so a stack of any depth keeps the image shape (pooling, where wanted, is a separate layer).
The carry bias initialises T's bias (not H's), so a negative value starts the layer near a
pure carry. The maths of the combination lives in `nn.fast_stack.highway_combine`, shared with
the dense layers; the gate interface (`num_gates`, `gate_activity`, `get/set_transform_bias`) is
the dense layer's, so gate records and lesioning treat both alike.
"""

from __future__ import annotations

import keras
from keras import ops

from highway_study.nn.gates import SingleGate
from highway_study.nn.highway import HighwayLayer, highway_combine


@keras.saving.register_keras_serializable(package="highway_study")
class HighwayConv2D(SingleGate, HighwayLayer):
    """A highway layer of `kernel_size` x `kernel_size` convolutions (channels last)."""

    def __init__(self, kernel_size: int = 3, **kwargs):
        super().__init__(**kwargs)  # activation, carry_bias, initializers: HighwayLayer
        self.kernel_size = int(kernel_size)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        shape = (self.kernel_size, self.kernel_size, channels, channels)
        self.kernel_h = self.add_weight(
            name="kernel_h", shape=shape, initializer=self.kernel_initializer)
        self.bias_h = self.add_weight(
            name="bias_h", shape=(channels,), initializer=self.bias_initializer)
        self.kernel_t = self.add_weight(
            name="kernel_t", shape=shape, initializer=self.kernel_initializer)
        self.bias_t = self.add_weight(
            name="bias_t", shape=(channels,),
            initializer=keras.initializers.Constant(self.carry_bias))

    def _h_and_t(self, x):
        # One convolution with 2*channels outputs instead of two: fewer, larger ops.
        kernel = ops.concatenate([self.kernel_h, self.kernel_t], axis=-1)
        bias = ops.concatenate([self.bias_h, self.bias_t], axis=-1)
        pre = ops.conv(x, kernel, strides=1, padding="same") + bias
        h, t = ops.split(pre, 2, axis=-1)
        return self.activation(h), ops.sigmoid(t)

    def transform_gate(self, x):
        """T(x), the share of the transformed signal in the output (0 = pure carry)."""
        return self._h_and_t(x)[1]

    def call(self, x):
        h, t = self._h_and_t(x)
        return highway_combine(x, h, t)

    def get_config(self):
        config = super().get_config()
        config.update(kernel_size=self.kernel_size)
        return config
