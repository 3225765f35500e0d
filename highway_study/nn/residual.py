"""A residual layer, the identity-shortcut design that followed highway layers."""

from __future__ import annotations

import keras
from keras import ops

from highway_study.nn.base import ShapeKeepingLayer


@keras.saving.register_keras_serializable(package="highway_study")
class ResidualDense(ShapeKeepingLayer):
    """y = x + activation(x W + b): a highway layer whose gate is stuck at T = C = 1.

    Its width is the width of its input.
    """

    def build(self, input_shape):
        width = int(input_shape[-1])
        self.kernel = self.add_weight(name="kernel", shape=(width, width),
                                      initializer=self.kernel_initializer)
        self.bias = self.add_weight(name="bias", shape=(width,),
                                    initializer=self.bias_initializer)

    def call(self, x):
        return x + self.activation(ops.matmul(x, self.kernel) + self.bias)
