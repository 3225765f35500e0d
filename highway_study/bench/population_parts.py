"""Where a population's deep-stack step spends its time, part by part, on one core.

    python -m highway_study.bench.population_parts [--depth 200] [--members 10]
    XLA_FLAGS=--xla_cpu_use_xnnpack=true python -m highway_study.bench.population_parts

Why: at depths 200-1000 a population is no faster per member than single runs, so the
protocol's time is the speed of these parts. Each is timed alone (best of 5 calls, one
TensorFlow thread, as each of a population's two groups runs on one core): the forward pass
without and with keeping what the backward pass needs, the backward loop, and the kernel
gradient; beside them NumPy (OpenBLAS, one thread) on the kernel gradient's batched matmul
and on the forward's matmuls, as a reference of what the arithmetic can run at; and one optimizer
step (SGD, momentum, Adam) of the stack's weights; and the whole stack's forward and
backward pass as training runs it, per recompute segment (`--segments`). GFLOP/s
counts one [batch, w] @ [w, 2w] product per layer and member.
"""

from __future__ import annotations

import argparse
import os
import time

from analysis.markdown import table


def _best_ms(fn, *args, repeats: int = 5) -> float:
    import numpy as np

    def run():
        result = fn(*args)
        for value in result if isinstance(result, (list, tuple)) else [result]:
            np.asarray(value)

    run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def measure(depth: int, members: int, batch: int = 50, width: int = 50,
            segments=(0, 50)) -> list[tuple]:
    """[(part, milliseconds)] for one population step's stack at these sizes."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import numpy as np
    import tensorflow as tf

    from highway_study.nn import fast_stack
    from highway_study.runtime.threads import limit_threads

    limit_threads(1)  # one core, as each of a population's groups (no-op if TF has started)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(members, batch, width)).astype("float32")
    kernel = rng.normal(scale=0.1, size=(depth, members, width, 2 * width)).astype("float32")
    bias = np.full((depth, members, 1, 2 * width), -2.0, "float32")
    tx, tk, tb = map(tf.constant, (x, kernel, bias))
    forward, forward_keep, backward, _ = fast_stack.compiled_functions(tf.nn.relu)
    y, inputs, pres = forward_keep(tx, tk, tb)
    _, dpres, _ = backward(y, inputs, pres, tk)
    inputs_np, dpres_np = inputs.numpy(), dpres.numpy()

    def numpy_forward_matmuls():
        return [np.matmul(x, kernel[layer]) for layer in range(depth)][-1]

    updates = [(f"{name} update of the stack's kernel and bias",
                _best_ms(_update(name, kernel, bias)))
               for name in ("sgd", "momentum", "adam")]
    whole = [(f"forward + backward, segment {count or 'none'} (highway_stack)",
              _best_ms(_forward_backward(tx, tk, tb, count))) for count in segments]
    return [
        ("forward (XLA)", _best_ms(forward, tx, tk, tb)),
        ("forward keeping inputs and pre-activations (XLA)", _best_ms(forward_keep, tx, tk, tb)),
        ("backward loop (XLA)", _best_ms(backward, y, inputs, pres, tk)),
        ("kernel gradient (XLA batched matmul)", _best_ms(fast_stack.kernel_grad, inputs, dpres)),
        ("kernel gradient (NumPy, one thread)",
         _best_ms(lambda: np.matmul(inputs_np.transpose(0, 1, 3, 2), dpres_np))),
        ("forward matmuls only (NumPy, one thread)", _best_ms(numpy_forward_matmuls)),
        *updates,
        *whole,
    ]


def _forward_backward(x, kernel, bias, segment: int):
    """A call of the whole stack's training forward and backward pass, as training does."""
    import tensorflow as tf

    from highway_study.nn import fast_stack

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch([x, kernel, bias])
            y = fast_stack.highway_stack(x, kernel, bias, tf.nn.relu, streams=1,
                                         segment=segment)
            loss = tf.reduce_sum(y * y)
        return tape.gradient(loss, [x, kernel, bias])

    return step


def _update(optimizer: str, kernel, bias):
    """A call applying one optimizer step of `optimizer` to stacked weights of these
    shapes (training.batched.Group.apply, all members moving)."""
    import numpy as np
    import tensorflow as tf
    from omegaconf import OmegaConf

    from highway_study.training.batched import Group

    members = kernel.shape[1]
    config = OmegaConf.create({"optimizer": {"name": optimizer, "learning_rate": 0.01,
                                             "momentum": 0.9, "schedule": "constant"}})
    def state(k):  # one member in its Keras model's layout (training.batched)
        return {"weights": [np.zeros((1, 50), np.float32), np.zeros(50, np.float32),
                            kernel[:, k], bias[:, k].reshape(kernel.shape[0], -1),
                            np.zeros((50, 10), np.float32), np.zeros(10, np.float32)]}

    group = Group([state(k) for k in range(members)], [config] * members, None)
    rng = np.random.default_rng(1)  # random, not constant: XLA would fold a constant away
    grads = [tf.constant(rng.normal(scale=1e-3, size=variable.shape).astype("float32"))
             for variable in group.variables]
    finite = tf.ones([members], tf.bool)
    apply = tf.function(lambda step: group.apply(grads, finite, step))
    return lambda: (apply(tf.constant(0, tf.int64)), group.kernel.value())[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[2].split(".")[0])
    parser.add_argument("--depth", type=int, default=200)
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--segments", type=int, nargs="+", default=[0, 50],
                        help="highway_stack's recompute segments to time whole (0: none)")
    args = parser.parse_args(argv)
    if min(args.segments) < 0:
        parser.error(f"--segments holds {min(args.segments)}: use 0 (none) or a positive "
                     "number of layers.")
    if args.depth < 1 or args.members < 1:
        parser.error(f"--depth and --members must be positive (got {args.depth}, "
                     f"{args.members}).")
    flops = 2 * 50 * 50 * 100 * args.depth * args.members
    print(f"depth {args.depth}, {args.members} members, batch 50, width 50, one thread; "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    print(table(["part", "ms", "GFLOP/s per layer product"],
                [[part, f"{ms:.3g}", f"{flops / ms / 1e6:.3g}"]
                 for part, ms in measure(args.depth, args.members, segments=args.segments)]),
          end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
