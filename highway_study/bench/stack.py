"""The highway stack alone, forward and backward, per number of streams.

    python -m highway_study.bench.stack [--depth 1000] [--streams 1 2 3 4] [--threads N]

Why beside the full benchmark: it isolates what `model.streams` changes (the stack's own
loops) from the rest of a training step, in one process, so the streams compare within
seconds of each other. Weights are random (sd 0.2, carry bias -2), width 50, ReLU, op
determinism on as in training; each time is the median of 7 windows of 10 calls of one
`tf.function` computing the stack's output and the gradients of sum(y^2), as Keras would.
"""

from __future__ import annotations

import argparse
import statistics
import time

from highway_study.bench.benchmark import require_positive
from highway_study.runtime.threads import limit_threads


def time_streams(depth: int, width: int, batch: int, streams: list[int]) -> dict[int, float]:
    """Milliseconds per forward + backward pass, per streams count."""
    import keras
    import numpy as np
    import tensorflow as tf

    from highway_study.nn import fast_stack

    tf.config.experimental.enable_op_determinism()
    rng = np.random.default_rng(0)
    kernel = tf.Variable(rng.normal(0, 0.2, (depth, width, 2 * width)).astype("f4"))
    bias = tf.Variable(np.concatenate(
        [rng.normal(0, 0.1, (depth, width)), np.full((depth, width), -2.0)], 1).astype("f4"))
    x = tf.constant(rng.normal(size=(batch, width)).astype("f4"))
    activation = keras.activations.get("relu")

    def step_for(count):
        @tf.function
        def step(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = fast_stack.highway_stack(x, kernel, bias, activation, streams=count)
                loss = tf.reduce_sum(y * y)
            return tape.gradient(loss, [x, kernel, bias])
        return step

    results = {}
    for count in streams:
        step = step_for(count)
        step(x)  # trace and compile
        windows = []
        for _ in range(7):
            start = time.perf_counter()
            for _ in range(10):
                grads = step(x)
            grads[0].numpy()
            windows.append((time.perf_counter() - start) / 10 * 1e3)
        results[count] = statistics.median(windows)
    return results


def parse_args(argv=None):
    """The command line, checked (argparse's one-sentence error on a bad value)."""
    parser = argparse.ArgumentParser(prog="python -m highway_study.bench.stack",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=1000)
    parser.add_argument("--width", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--threads", type=int, default=None,
                        help="size TensorFlow's intra- and inter-op pools (default: its own, "
                             "one per core), e.g. 1 for what a joblib job gets on 2 cores")
    args = parser.parse_args(argv)
    require_positive(parser, args, ["depth", "width", "batch_size"], ["streams"])
    if args.threads is not None:
        require_positive(parser, args, ["threads"], [])
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        limit_threads(args.threads)
    times = time_streams(args.depth, args.width, args.batch_size, args.streams)
    threads = "TensorFlow's default threads" if args.threads is None else f"{args.threads} thread(s)"
    print(f"depth {args.depth}, width {args.width}, batch {args.batch_size}, {threads}: "
          "forward + backward")
    for count, ms in times.items():
        print(f"  streams {count}: {ms:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
