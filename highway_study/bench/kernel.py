"""The compiled kernel's passes alone, against other versions of its source.

    python -m highway_study.bench.kernel [--depth 1000] [--members 21] [--threads 2]
                                         [--compare OLD.c ...] [--repeats 5]

Why: a change to `nn/native/highway_population.c` is judged by its own passes, timed in
the same process alternating with the version it replaces (this machine's speed drifts
between minutes), and by whether it gives the same bits. Every source is built as the
project builds its own (`native_kernel.FLAGS`), the others into a private temporary folder.
The data are a population's step at the blog's shapes (batch 50, width 50, ReLU, carry bias
-2); each time is the best of `--repeats` calls. GFLOP/s counts the step's three
[batch, w] x [w, 2w]-sized products per layer and member (`bench.limit`).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from analysis.markdown import table
from highway_study.bench.benchmark import require_positive
from highway_study.bench.limit import stack_flops_per_member_step
from highway_study.nn import native_kernel

BATCH, WIDTH = 50, 50
PASSES = ("training forward", "backward", "evaluation forward")


def build_other(source: Path, folder: Path, number: int) -> native_kernel.Kernel:
    """Another version of the kernel's source, built and loaded as the project's own
    (`number` tells apart sources of the same name)."""
    target = folder / f"{number}-{source.stem}.so"
    return native_kernel.Kernel(native_kernel.build_source(source, target))


def step_data(depth: int, members: int, seed: int = 0):
    """x, kernel, bias and dy of one population step, in the layouts the engine passes."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((members, BATCH, WIDTH)).astype(np.float32)
    kernel = native_kernel.aligned_empty((depth, members, WIDTH, 2 * WIDTH))
    kernel[...] = rng.standard_normal(kernel.shape) * 0.1
    bias = native_kernel.aligned_empty((depth, members, 1, 2 * WIDTH))
    bias[...] = 0.0
    bias[..., WIDTH:] = -2.0
    dy = (rng.standard_normal(x.shape) * 0.01).astype(np.float32)
    return x, kernel, bias, dy


def results(kernel: native_kernel.Kernel, data, threads: int):
    """(y, dx, kernel gradient, bias gradient) of one training step's passes."""
    x, weights, bias, dy = data
    keep = kernel.buffers(weights.shape[0], weights.shape[1], BATCH, WIDTH)
    y = kernel.forward("relu", x, weights, bias, keep, threads)
    return (y, *kernel.backward("relu", dy, weights, keep, threads=threads))


def measure(kernels: dict, depth: int, members: int, threads: int, repeats: int) -> dict:
    """{name: {pass: best seconds}}, the kernels' calls alternating within each repeat."""
    data = step_data(depth, members)
    x, weights, bias, dy = data
    state = {name: (kernel.buffers(depth, members, BATCH, WIDTH),
                    native_kernel.aligned_empty(weights.shape))
             for name, kernel in kernels.items()}
    best = {name: dict.fromkeys(PASSES, float("inf")) for name in kernels}
    for _ in range(repeats + 1):  # the first round warms the caches and the pages
        for name, kernel in kernels.items():
            keep, dkernel = state[name]
            calls = (lambda: kernel.forward("relu", x, weights, bias, keep, threads),
                     lambda: kernel.backward("relu", dy, weights, keep, dkernel, threads),
                     lambda: kernel.forward("relu", x, weights, bias, None, threads))
            for part, call in zip(PASSES, calls):
                start = time.perf_counter()
                call()
                best[name][part] = min(best[name][part], time.perf_counter() - start)
    return best


def difference(ours, theirs) -> str:
    """'same bits', or the largest difference relative to each result's largest value."""
    if all(np.array_equal(a, b, equal_nan=True) for a, b in zip(ours, theirs)):
        return "same bits"
    worst = max(float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))
                for a, b in zip(ours, theirs))
    return f"differs: up to {worst:.1e} of the largest value"


def report(best: dict, sameness: dict, depth: int, members: int, threads: int) -> str:
    per_thread = depth * members / threads  # layer-members each thread computes
    step_flops = stack_flops_per_member_step(depth, WIDTH, BATCH) * members
    rows = [[name, *(f"{parts[p] * 1e3:.1f} ({parts[p] / per_thread * 1e6:.1f})"
                     for p in PASSES),
             f"{step_flops / (parts[PASSES[0]] + parts[PASSES[1]]) / 1e9:.1f}", sameness[name]]
            for name, parts in best.items()]
    return (f"depth {depth}, {members} members, {threads} threads, batch {BATCH}, width "
            f"{WIDTH}: ms (us per layer and member on each thread)\n"
            + table(["source", *PASSES, "training step GFLOP/s", "results"], rows))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[2].strip(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth", type=int, default=1000)
    parser.add_argument("--members", type=int, default=21)
    parser.add_argument("--threads", type=int, default=native_kernel.default_threads())
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compare", type=Path, nargs="+", default=[], metavar="SOURCE",
                        help="other versions of native/highway_population.c")
    args = parser.parse_args(argv)
    require_positive(parser, args, ["depth", "members", "threads", "repeats"], [])
    for source in args.compare:
        if not source.is_file():
            parser.error(f"--compare {source}: no such file; name a C source of the kernel.")
    try:
        kernels = {"this checkout": native_kernel.load()}
        folder = Path(tempfile.mkdtemp(prefix="kernel-bench-"))
        try:
            for number, source in enumerate(args.compare):
                kernels[str(source)] = build_other(source, folder, number)
            data = step_data(args.depth, args.members)
            # this checkout's row compares two calls of it: the kernel is deterministic
            ours = results(kernels["this checkout"], data, args.threads)
            sameness = {name: difference(results(kernel, data, args.threads), ours)
                        for name, kernel in kernels.items()}
            best = measure(kernels, args.depth, args.members, args.threads, args.repeats)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    except native_kernel.NativeUnavailable as error:
        raise SystemExit(f"bench.kernel: {error}") from None
    print(report(best, sameness, args.depth, args.members, args.threads), end="")


if __name__ == "__main__":
    main()
