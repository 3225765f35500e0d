"""The population's maths in JAX, to measure on a GPU what batching members buys there.

Why JAX: the lent GPU machines hold JAX but no TensorFlow, nothing can be installed there
from the network, and TensorFlow's wheel (274 MB for the CPU one) is over what a call may
carry (64 MiB). So this module restates, with the same weight layout as
highway_study.nn.fast_stack (kernel [depth, members, width, 2*width], bias
[depth, members, 1, 2*width]), the blog's network: a dense ReLU layer in, `depth` highway
layers, a softmax layer out, cross-entropy summed over the batch, plain SGD. It is a proxy
for the project's TensorFlow path, not that path: `reference` writes, here, the TensorFlow
stack's outputs and gradients for fixed inputs, and `--check` compares the JAX stack with
them on the GPU before anything is timed.

    python -m highway_study.bench.jax_population --write-reference ref.npz     # here (TF)
    python -m highway_study.bench.jax_population --check ref.npz --sweep        # there (JAX)

The sweep prints member-steps/s per depth of the blog's protocol for one network at a time
(members=1) and for a depth's 21 runs as one population (members=21), and the protocol's
estimated wall time for each (docs/benchmark.md, "On a GPU").
"""

from __future__ import annotations

import argparse
import functools
import json
import time

import numpy as np

PROTOCOL_DEPTHS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
RUNS_PER_DEPTH = 21  # 7 carry biases x 3 seeds
STEPS_PER_RUN = 5000  # the blog's budget
WIDTH, BATCH, PIXELS, CLASSES = 50, 50, 784, 10


def reference(path: str, depth: int = 20, members: int = 3, seed: int = 0) -> dict:
    """Inputs, outputs and gradients of the TensorFlow stack (training=True), saved to
    `path` (.npz) for `check`; returns the arrays."""
    import tensorflow as tf

    from highway_study.nn.fast_stack import highway_stack

    rng = np.random.default_rng(seed)
    arrays = {
        "x": rng.normal(size=(members, BATCH, WIDTH)).astype(np.float32),
        "kernel": (0.1 * rng.normal(size=(depth, members, WIDTH, 2 * WIDTH))).astype(np.float32),
        "bias": rng.uniform(-3, 0, size=(depth, members, 1, 2 * WIDTH)).astype(np.float32),
        "dy": rng.normal(size=(members, BATCH, WIDTH)).astype(np.float32),
    }
    x, kernel, bias = (tf.constant(arrays[k]) for k in ("x", "kernel", "bias"))
    with tf.GradientTape() as tape:
        tape.watch([x, kernel, bias])
        y = highway_stack(x, kernel, bias, tf.nn.relu, training=True, streams=1)  # as batched.py
        loss = tf.reduce_sum(y * arrays["dy"])
    grads = tape.gradient(loss, [x, kernel, bias])
    arrays.update(y=y.numpy(), dx=grads[0].numpy(), dkernel=grads[1].numpy(),
                  dbias=grads[2].numpy())
    np.savez(path, **arrays)
    return arrays


def _jax():
    import jax

    jax.config.update("jax_default_matmul_precision", "highest")  # float32, as on the CPU
    return jax


def stack(x, kernel, bias):
    """The highway layers: y = H*T + x*(1-T) per layer, one scan over the stacked weights."""
    jax = _jax()
    jnp = jax.numpy

    def layer(y, weights):
        k, b = weights
        pre = jnp.einsum("mbi,mio->mbo", y, k) + b
        h, t = jax.nn.relu(pre[..., :WIDTH]), jax.nn.sigmoid(pre[..., WIDTH:])
        return h * t + y * (1.0 - t), None

    return jax.lax.scan(layer, x, (kernel, bias))[0]


def check(path: str) -> dict:
    """Largest absolute difference of the JAX stack from the TensorFlow reference, per
    output and gradient, relative to that array's largest magnitude."""
    jax = _jax()
    ref = np.load(path)
    y, pullback = jax.vjp(stack, ref["x"], ref["kernel"], ref["bias"])
    dx, dkernel, dbias = pullback(jax.numpy.asarray(ref["dy"]))
    got = {"y": y, "dx": dx, "dkernel": dkernel, "dbias": dbias}
    return {name: float(np.max(np.abs(np.asarray(value) - ref[name]))
                        / max(float(np.max(np.abs(ref[name]))), 1e-30))
            for name, value in got.items()}


def init(depth: int, members: int, carry_bias: float = -2.0, seed: int = 0) -> dict:
    """The blog's initialisation (normal weights of sd 0.1, biases 0.1, b_T = carry_bias),
    each member its own draw."""
    rng = np.random.default_rng(seed)

    def normal(*shape):
        return (0.1 * rng.normal(size=shape)).astype(np.float32)

    bias = np.full((depth, members, 1, 2 * WIDTH), 0.1, np.float32)
    bias[..., WIDTH:] = carry_bias
    return {"w_in": normal(members, PIXELS, WIDTH),
            "b_in": np.full((members, 1, WIDTH), 0.1, np.float32),
            "kernel": normal(depth, members, WIDTH, 2 * WIDTH), "bias": bias,
            "w_out": normal(members, WIDTH, CLASSES),
            "b_out": np.full((members, 1, CLASSES), 0.1, np.float32)}


@functools.cache
def train_step(learning_rate: float = 0.01):
    """One jitted SGD step of every member: (params, images, labels) -> (params, losses);
    cached, so that each shape compiles once."""
    jax = _jax()
    jnp = jax.numpy

    def losses(params, images, labels):
        hidden = jax.nn.relu(jnp.einsum("mbp,mpw->mbw", images, params["w_in"]) + params["b_in"])
        hidden = stack(hidden, params["kernel"], params["bias"])
        logits = jnp.einsum("mbw,mwc->mbc", hidden, params["w_out"]) + params["b_out"]
        picked = jnp.take_along_axis(jax.nn.log_softmax(logits), labels[..., None], axis=-1)
        return -picked.sum(axis=(1, 2))  # summed over the batch, one loss per member

    def total(params, images, labels):
        per_member = losses(params, images, labels)
        return per_member.sum(), per_member  # members share no weight: separate gradients

    def step(params, images, labels):
        (_, per_member), grads = jax.value_and_grad(total, has_aux=True)(params, images,
                                                                         labels)
        new = jax.tree_util.tree_map(lambda p, g: p - learning_rate * g, params, grads)
        return new, per_member

    return jax.jit(step, donate_argnums=0)


def member_steps_per_second(depth: int, members: int, steps: int, batches: int = 20) -> float:
    """Timed SGD steps of a population after two untimed ones (compilation)."""
    jax = _jax()
    rng = np.random.default_rng(1)
    images = jax.device_put(rng.normal(size=(batches, members, BATCH, PIXELS)).astype(np.float32))
    labels = jax.device_put(rng.integers(0, CLASSES, (batches, members, BATCH)).astype(np.int32))
    params = jax.device_put(init(depth, members))
    step = train_step()
    for i in range(2):
        params, loss = step(params, images[i], labels[i])
    loss.block_until_ready()
    start = time.perf_counter()
    for i in range(steps):
        params, loss = step(params, images[i % batches], labels[i % batches])
    loss.block_until_ready()
    return members * steps / (time.perf_counter() - start)


def sweep(depths=PROTOCOL_DEPTHS, members=(1, RUNS_PER_DEPTH), seconds: float = 3.0) -> list:
    """Per depth and population size: member-steps/s, steps chosen to last about
    `seconds` after a short probe."""
    rows = []
    for depth in depths:
        for size in members:
            probe = member_steps_per_second(depth, size, steps=5)
            steps = int(min(max(seconds * probe / size, 5), 2000))
            rate = member_steps_per_second(depth, size, steps)
            rows.append({"depth": depth, "members": size, "steps": steps,
                         "member_steps_per_s": rate})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def protocol_minutes(rows: list) -> dict:
    """Estimated wall time (min) of the blog's protocol (per depth 21 runs x 5000 steps)
    per population size, from the measured rates, one population at a time."""
    total = {}
    for row in rows:
        work = RUNS_PER_DEPTH * STEPS_PER_RUN / row["member_steps_per_s"] / 60
        total[row["members"]] = total.get(row["members"], 0.0) + work
    return total


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-reference", metavar="NPZ",
                        help="write the TensorFlow stack's outputs and gradients (needs TF)")
    parser.add_argument("--check", metavar="NPZ", help="compare the JAX stack with them")
    parser.add_argument("--sweep", action="store_true", help="time the protocol's depths")
    parser.add_argument("--depths", type=int, nargs="+", default=list(PROTOCOL_DEPTHS))
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per point")
    args = parser.parse_args(argv)
    if args.write_reference:
        reference(args.write_reference)
        print(f"wrote {args.write_reference}")
    if args.check:
        errors = check(args.check)
        print(json.dumps({"check_relative_max_error": errors}))
        if max(errors.values()) > 1e-4:
            print("the JAX stack differs from the TensorFlow reference: not timed")
            return 1
    if args.sweep:
        jax = _jax()
        print(json.dumps({"device": str(jax.devices()[0]), "jax": jax.__version__}))
        rows = sweep(args.depths, seconds=args.seconds)
        print(json.dumps({"protocol_minutes_by_members": protocol_minutes(rows)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
