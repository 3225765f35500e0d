"""What every hidden layer of the study is configured by, kept and serialised in one place."""

from __future__ import annotations

import keras


class ShapeKeepingLayer(keras.layers.Layer):
    """A layer whose output has its input's shape (highway and residual layers).

    `activation` is that of its transform H; the initializers are those of its kernels and
    biases (a highway layer's gate bias has its own: the carry bias).
    """

    def __init__(self, activation="relu", kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            activation=keras.activations.serialize(self.activation),
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
        )
        return config
