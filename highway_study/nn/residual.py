"""A residual layer, the identity-shortcut design that followed highway layers."""

from __future__ import annotations

import keras
from keras import ops

from highway_study.nn.base import ShapeKeepingLayer


@keras.saving.register_keras_serializable(package="highway_study")
class ResidualDense(ShapeKeepingLayer):
    """y = x + branch_scale * activation(x W + b): a highway layer whose gates are stuck open.

    Its width is the width of its input. A branch_scale below 1 keeps the activations of a
    deep stack from growing with depth (unscaled, they diverge within steps).
    """

    def __init__(self, branch_scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.branch_scale = float(branch_scale)

    def get_config(self):
        return dict(super().get_config(), branch_scale=self.branch_scale)

    def build(self, input_shape):
        width = int(input_shape[-1])
        self.kernel = self.add_weight(name="kernel", shape=(width, width),
                                      initializer=self.kernel_initializer)
        self.bias = self.add_weight(name="bias", shape=(width,),
                                    initializer=self.bias_initializer)

    def call(self, x):
        return x + self.branch_scale * self.activation(ops.matmul(x, self.kernel) + self.bias)
