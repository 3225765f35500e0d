"""A population's highway stack through the compiled kernel, as a differentiable TF op.

Same maths and layout as `fast_stack.highway_stack` with a member axis (x [K, B, W], kernel
[L, K, W, 2W], bias [L, K, 1, 2W]); results agree with it up to float rounding
(tests/test_native_stack.py). The kernel runs inside `tf.numpy_function`, which costs tens of
microseconds per call: nothing beside a deep stack's step of tens of milliseconds.

The training forward pass keeps every layer's input and gates in NumPy buffers owned by the
op (`_Kept`), reused from step to step, and the gradient function reads them: one forward
pass, then its backward pass, as a training step runs them.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from highway_study.nn import native_kernel


def activation_name(activation) -> str | None:
    """The kernel's name for a Keras activation, or None if the kernel does not compute it."""
    for name in native_kernel.ACTIVATIONS:
        if activation is keras.activations.get(name) or activation is getattr(tf.nn, name):
            return name
    return None


def available(activation) -> str | None:
    """None if the kernel can run a stack with this activation here, else why not."""
    if activation_name(activation) is None:
        return (f"the native kernel computes only {', '.join(native_kernel.ACTIVATIONS)} "
                f"layers, not {getattr(activation, '__name__', activation)}.")
    try:
        native_kernel.load()
    except native_kernel.NativeUnavailable as error:
        return str(error)
    return None


def kernel_threads() -> int:
    """As many kernel threads as TensorFlow may run ops at once ($HIGHWAY_STUDY_THREADS or a
    cluster task's cpus_per_task set that, runtime.threads), else the cores this process may
    use."""
    return (tf.config.threading.get_inter_op_parallelism_threads()
            or native_kernel.default_threads())


def gate_means(x, kernel, bias, activation) -> np.ndarray:
    """[K, L]: every member's mean transform gate per layer on its own batch x [K, B, W]
    (NumPy arrays in the stack's layout), each member computed on its own, as a run alone."""
    return native_kernel.load().gate_means(activation_name(activation), x, kernel, bias,
                                           threads=kernel_threads())


class _Kept:
    """What the last training forward pass kept, in buffers sized once per shape."""

    def __init__(self):
        self.buffers = None
        self.dkernel = None
        self.fresh = False

    def take(self, depth, members, batch, width):
        shape = (members, depth, batch, width)
        if self.buffers is None or self.buffers[0].shape != shape:
            self.buffers = native_kernel.Kernel.buffers(depth, members, batch, width)
        self.fresh = True
        return self.buffers


def population_stack(x, kernel, bias, activation, training: bool = True):
    """The stacked highway layers of every member on its own x [K, B, W]; differentiable in
    x, kernel and bias."""
    name = activation_name(activation)
    lib = native_kernel.load()
    threads = kernel_threads()
    out_shape = x.shape

    if not training:
        y = tf.numpy_function(lambda x_, k_, b_: lib.forward(name, x_, k_, b_,
                                                             threads=threads),
                              [x, kernel, bias], tf.float32, stateful=False)
        y.set_shape(out_shape)
        return y

    kept = _Kept()

    def forward_keep(x_, k_, b_):
        buffers = kept.take(k_.shape[0], k_.shape[1], x_.shape[1], k_.shape[2])
        return lib.forward(name, x_, k_, b_, keep=buffers, threads=threads)

    def backward(dy_, k_):
        if not kept.fresh:
            raise RuntimeError("native stack: a backward pass without its forward pass.")
        kept.fresh = False
        # The kernel gradient's buffer (depth x members x width x 2 width floats) is reused: TensorFlow
        # takes it without a copy, and a training step's optimizer update has consumed it
        # before the next step's backward pass writes it again. A caller that keeps this op's
        # gradients across steps must copy them.
        if kept.dkernel is None or kept.dkernel.shape != k_.shape:
            kept.dkernel = native_kernel.aligned_empty(k_.shape)
        return lib.backward(name, dy_, k_, kept.buffers, dkernel=kept.dkernel,
                            threads=threads)

    @tf.custom_gradient
    def apply(x, kernel, bias):
        y = tf.numpy_function(forward_keep, [x, kernel, bias], tf.float32)
        y.set_shape(out_shape)

        def grad(dy):
            dx, dkernel, dbias = tf.numpy_function(backward, [dy, kernel],
                                                   [tf.float32] * 3)
            dx.set_shape(x.shape)
            dkernel.set_shape(kernel.shape)
            dbias.set_shape(bias.shape)
            return dx, dkernel, dbias

        return y, grad

    return apply(x, kernel, bias)
