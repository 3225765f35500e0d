"""The maths of a stack of highway layers with stacked weights, compiled with XLA.

`highway_stack(x, kernel, bias, activation)` applies `depth` highway layers whose weights
are stacked as kernel [depth, width, 2*width] and bias [depth, 2*width] (columns [:width]
belong to H, [width:] to the transform gate T). Why it is built this way:

- one XLA-compiled loop runs all layers, so building and tracing cost the same at any depth
  (a 1000-layer Keras graph takes minutes to build here) and each layer's ops fuse;
- TensorFlow cannot differentiate an XLA-compiled loop from outside it ("TensorList
  crossing the XLA/TF boundary"), so the gradient is written by hand (`tf.custom_gradient`):
  the training forward pass keeps each layer's input and pre-activation (3 * width floats
  per example per layer), and the backward loop
  carries only what is sequential (dx = dpre @ W^T plus the gate's elementwise maths, whose
  derivative a GradientTape takes, so any Keras activation works). The weight gradients of
  all layers are one batched matmul after the loop, left to TensorFlow; recomputing the
  forward pass inside the backward function instead (TensorFlow's autodiff under XLA) is
  the alternative docs/benchmark.md compares;
- one XLA loop keeps one core busy, so the batch is cut into `streams` slices, each with
  its own loops, which TensorFlow's executor runs side by side
  (`python -m highway_study.bench.stack` compares stream counts);
- the forward loop reads the next layer's bias one iteration ahead and carries it, so that
  the dynamic slice does not sit inside the layer's elementwise fusion (XLA:CPU then does
  not vectorise the fusion, `_prefetch`).

XLA is used per function (`tf.function(jit_compile=True)`), not per model: Keras turns
model-level `jit_compile` off whenever op determinism is enabled, which every run does.
The measurements behind each choice: docs/benchmark.md, "Why the stack is built this way".
"""

from __future__ import annotations

import functools
import os

import tensorflow as tf

MAX_DEFAULT_STREAMS = 2  # more streams than cores: compared in docs/benchmark.md


def highway_combine(x, h, t):
    """y = H*T + x*(1-T), written once so that every implementation rounds alike."""
    return h * t + x * (1.0 - t)


def _gates(pre, activation):
    pre_h, pre_t = tf.split(pre, 2, axis=-1)
    return activation(pre_h), tf.sigmoid(pre_t)


def _prefetch(stacked, i):
    """stacked[i] (clamped into range), read one iteration ahead and carried in the loop.

    Why: XLA:CPU fuses a dynamic slice read inside the loop into the layer's elementwise
    fusion, and that fusion then is not vectorised: reading the bias in the same
    iteration made a deep forward pass about twice as slow. Carried in, the slice is its
    own small copy and the maths is unchanged. (Prefetching the kept activations in the
    backward loop the same way measured slower, so the backward loop reads them in place.)
    """
    return stacked[tf.clip_by_value(i, 0, stacked.shape[0] - 1)]


@functools.cache
def compiled_functions(activation):
    """The XLA-compiled forward, training-forward, backward and gate-mean functions.

    Cached per activation so that every stack with the same activation shares one trace
    per input shape.
    """

    def layer(x, kernel, bias):
        pre = tf.matmul(x, kernel) + bias
        h, t = _gates(pre, activation)
        return highway_combine(x, h, t), pre, t

    def loop(x, kernel, bias, keep: bool):
        # Iteration i stores layer i's input and pre-activation. (Storing them one
        # iteration late, outside the layer's fusion, was faster for a batch of 128 but
        # slower for the batch slices of 64 that two streams run.)
        depth = kernel.shape[0]
        inputs = tf.TensorArray(x.dtype, size=depth, element_shape=x.shape)
        pres = tf.TensorArray(x.dtype, size=depth,
                              element_shape=x.shape[:-1].concatenate([2 * x.shape[-1]]))

        def body(i, y, bias_i, inputs, pres):
            y_next, pre, _ = layer(y, kernel[i], bias_i)
            if keep:
                inputs, pres = inputs.write(i, y), pres.write(i, pre)
            return i + 1, y_next, _prefetch(bias, i + 1), inputs, pres

        _, y, _, inputs, pres = tf.while_loop(
            lambda i, *_: i < depth, body, (tf.constant(0), x, bias[0], inputs, pres)
        )
        return (y, inputs.stack(), pres.stack()) if keep else y

    @tf.function(jit_compile=True)
    def forward(x, kernel, bias):
        return loop(x, kernel, bias, keep=False)

    @tf.function(jit_compile=True)
    def forward_keep(x, kernel, bias):
        return loop(x, kernel, bias, keep=True)

    @tf.function(jit_compile=True)
    def backward(dy, inputs, pres, kernel):
        """dx, every layer's dpre [depth, (members,) batch, 2*width] and the bias gradient
        (summed over the batch; a member axis keeps the bias's [depth, members, 1, 2*width]).

        The kernel gradient (one batched matmul of inputs and dpres) is left to TensorFlow's
        own BatchMatMul, which measured about twice as fast as XLA:CPU's.
        """
        depth = kernel.shape[0]

        def body(i, dy, dpres):
            j = depth - 1 - i
            x, pre = inputs[j], pres[j]
            with tf.GradientTape() as tape:
                tape.watch([x, pre])
                h, t = _gates(pre, activation)
                y = highway_combine(x, h, t)
            dx_carry, dpre = tape.gradient(y, [x, pre], output_gradients=dy)
            # transpose_b: transposing the whole kernel first measured slower.
            dx = dx_carry + tf.matmul(dpre, kernel[j], transpose_b=True)
            return i + 1, dx, dpres.write(j, dpre)

        dpres = tf.TensorArray(dy.dtype, size=depth, element_shape=pres.shape[1:])
        _, dx, dpres = tf.while_loop(lambda i, *_: i < depth, body, (tf.constant(0), dy, dpres))
        dpres = dpres.stack()
        return dx, dpres, tf.reduce_sum(dpres, axis=-2, keepdims=len(dpres.shape) == 4)

    @tf.function(jit_compile=True)
    def gate_means(x, kernel, bias):
        def step(carry, weights):
            y, _, t = layer(carry[0], *weights)
            return y, tf.reduce_mean(t, axis=[-2, -1])  # per member, if there is a member axis

        means = tf.zeros(x.shape[:-2], x.dtype)
        return tf.scan(step, (kernel, bias), initializer=(x, means))[1]

    return forward, forward_keep, backward, gate_means


@tf.function(jit_compile=True)
def _population_kernel_grad(inputs, dpres):
    return tf.matmul(inputs, dpres, transpose_a=True)


def kernel_grad(inputs, dpres):
    """Every layer's kernel gradient, inputs^T @ dpres, one batched matmul.

    A run alone's [depth] batch of matmuls is faster in TensorFlow's BatchMatMul, a
    population's [depth, members] batch in XLA's (docs/benchmark.md).
    """
    if len(inputs.shape) == 4:
        return _population_kernel_grad(inputs, dpres)
    return tf.matmul(inputs, dpres, transpose_a=True)


def split_batch(x, streams: int) -> list:
    """x cut along the batch into `streams` slices whose sizes differ by at most one.

    The batch size may only be known at run time (Keras traces with a batch of None), so the
    sizes are tensors: slice i holds (batch + i) // streams rows, which add up to batch.
    """
    if streams == 1:
        return [x]
    batch = tf.shape(x)[0]
    return tf.split(x, [(batch + i) // streams for i in range(streams)], num=streams)


def default_streams() -> int:
    """2 where TensorFlow may run two ops at once, else 1.

    With one inter-op thread (a joblib job's share of a 2-core machine, for example) two
    streams would run one after the other and only add work
    (`python -m highway_study.bench.stack --threads 1` shows it).
    """
    threads = tf.config.threading.get_inter_op_parallelism_threads() or os.cpu_count() or 1
    return min(MAX_DEFAULT_STREAMS, threads)


def highway_stack(x, kernel, bias, activation, training: bool = True,
                  streams: int | None = None, segment: int | None = None):
    """Apply the stacked highway layers to x [batch, width]; differentiable in all inputs.

    The same code trains a population of networks side by side (training.population):
    x [members, batch, width], kernel [depth, members, width, 2*width] and bias
    [depth, members, 1, 2*width]; every member's maths is then its own, as if alone.

    With `training=False` nothing is kept for a backward pass (evaluation, prediction).
    `streams` cuts the batch into that many slices, each run through its own compiled
    loop: the loops are independent, so TensorFlow runs them side by side on its inter-op
    threads, while one XLA loop keeps one core busy. Results equal the
    one-stream ones up to float rounding (the kernel gradient is a sum over slices).
    None: `default_streams()`.

    `segment` (layers): the training forward pass keeps only every segment's input, and
    the backward pass recomputes one segment's activations at a time before going through
    it, so that what it reads stays small; one more forward pass in exchange for memory
    traffic (docs/benchmark.md). None: `default_segment(depth)`; 0: keep every layer.
    """
    streams = streams or default_streams()
    depth = kernel.shape[0]
    segment = default_segment(depth) if segment is None else segment
    forward, forward_keep, backward, _ = compiled_functions(activation)
    if not training:
        return _concat([forward(part, kernel, bias) for part in split_batch(x, streams)])
    bounds = _segments(depth, segment)

    @tf.custom_gradient
    def apply(x, kernel, bias):
        # stop_gradient: no tape may record the compiled loops themselves (TensorFlow would
        # then try to build its own gradient of them, which fails); `grad` is the gradient.
        x, kernel, bias = map(tf.stop_gradient, (x, kernel, bias))
        parts = split_batch(x, streams)
        if bounds is None:
            kept = [forward_keep(part, kernel, bias) for part in parts]
            outputs = [y for y, _, _ in kept]
        else:
            starts, outputs = [], []
            for part in parts:
                inputs = []
                for begin, end in bounds:
                    inputs.append(part)
                    part = forward(part, kernel[begin:end], bias[begin:end])
                starts.append(inputs)
                outputs.append(part)

        def grad(dy):
            dxs, dkernels, dbiases = [], [], []
            for index, dy_part in enumerate(split_batch(dy, streams)):
                if bounds is None:
                    _, inputs, pres = kept[index]
                    dx, dpres, dbias = backward(dy_part, inputs, pres, kernel)
                    dkernels.append(kernel_grad(inputs, dpres))
                    dbiases.append(dbias)
                    dxs.append(dx)
                    continue
                pieces_k, pieces_b = [], []
                for (begin, end), start in zip(reversed(bounds), reversed(starts[index])):
                    k, b = kernel[begin:end], bias[begin:end]
                    _, inputs, pres = forward_keep(start, k, b)
                    dy_part, dpres, dbias = backward(dy_part, inputs, pres, k)
                    pieces_k.append(kernel_grad(inputs, dpres))
                    pieces_b.append(dbias)
                dxs.append(dy_part)
                dkernels.append(tf.concat(pieces_k[::-1], axis=0))
                dbiases.append(tf.concat(pieces_b[::-1], axis=0))
            return _concat(dxs), tf.add_n(dkernels), tf.add_n(dbiases)

        return _concat(outputs), grad

    return apply(x, kernel, bias)


SEGMENT_LAYERS = 50  # layers recomputed at a time in deep stacks (docs/benchmark.md)
SEGMENT_FROM_DEPTH = 500  # shallower stacks measured as fast or faster keeping every layer


def default_segment(depth: int) -> int:
    """SEGMENT_LAYERS for stacks of SEGMENT_FROM_DEPTH layers or more, else 0 (none)."""
    return SEGMENT_LAYERS if depth >= SEGMENT_FROM_DEPTH else 0


def _segments(depth: int, segment: int) -> list[tuple[int, int]] | None:
    """[(begin, end)] layer ranges of at most `segment` layers, or None for one whole."""
    if segment <= 0 or segment >= depth:
        return None
    return [(begin, min(begin + segment, depth)) for begin in range(0, depth, segment)]


def _concat(parts):
    return parts[0] if len(parts) == 1 else tf.concat(parts, axis=0)


def gate_means(x, kernel, bias, activation):
    """Mean transform-gate value of every layer on the batch x: shape [depth], or
    [depth, members] for a population's stacked weights."""
    return compiled_functions(activation)[3](x, kernel, bias)
