"""The protocol's arithmetic limit on this machine: its matmul FLOPs over the machine's own
large float32 matmul rate, so a benchmark can say how far each path is from what the cores
can do (docs/benchmark.md).

The FLOPs count the matmuls only, forward and backward (a backward pass is two matmuls per
forward one: the gradients to the input and to the weights): a highway layer of width W on
a batch of B is two products (H and T) of 2 B W^2 each, so 12 B W^2 per step; the dense
layer in (784 inputs) and out (10 classes) add 6 B (784 W + 10 W). Gates, activations and
the optimizer's elementwise updates are left out: they are not where the time can go.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

INPUTS, CLASSES = 784, 10  # MNIST, the protocol's data
LIMIT_SIZE, LIMIT_REPEATS = 2048, 5  # best of five 2048^3 products
CPUINFO = Path("/proc/cpuinfo")
# The widest vector extension a CPU's flags name, and its width in bits.
VECTOR_FLAGS = (("avx512f", 512), ("sve", 0), ("avx2", 256), ("avx", 256), ("asimd", 128),
                ("sse2", 128))


def stack_flops_per_member_step(depth: int, width: int, batch: int) -> float:
    """Matmul FLOPs of one training step of a member's highway layers: per layer one
    [batch, w] x [w, 2w] product forward and two backward."""
    return 12.0 * batch * width * width * depth


def flops_per_member_step(depth: int, width: int, batch: int) -> float:
    """Matmul FLOPs of one training step of one highway_fc net (forward and backward)."""
    return (stack_flops_per_member_step(depth, width, batch)
            + 6.0 * batch * width * (INPUTS + CLASSES))


def protocol_flops(depths, runs_per_depth: int, steps: int, width: int, batch: int) -> float:
    """Matmul FLOPs of the whole protocol: every depth's runs, every step."""
    return sum(runs_per_depth * steps * flops_per_member_step(depth, width, batch)
               for depth in depths)


def matmul_rate(size: int = LIMIT_SIZE, repeats: int = LIMIT_REPEATS) -> float:
    """FLOP/s of the best of `repeats` float32 products of two size x size matrices, on every
    core (numpy's BLAS, threaded as installed): the rate the protocol cannot beat."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    a @ b  # warm up: threads started, pages touched
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2.0 * size ** 3 / best


def describe_cpu(cpuinfo: str) -> tuple[str, str]:
    """(the CPU's name, its widest vector extension with width) from /proc/cpuinfo's text."""
    name, flags = "", set()
    for line in cpuinfo.splitlines():
        key, colon, value = line.partition(":")
        key = key.strip().lower()
        if colon and key in ("model name", "cpu model", "uarch") and not name:
            name = " ".join(value.split())
        elif colon and key in ("flags", "features"):
            flags |= set(value.split())
    for flag, bits in VECTOR_FLAGS:
        if flag in flags:
            return name or "unknown CPU", f"{flag.upper()} ({bits} bits)" if bits \
                else f"{flag.upper()} (scalable)"
    return name or "unknown CPU", "no vector extension named"


def this_cpu() -> tuple[str, str]:
    try:
        return describe_cpu(CPUINFO.read_text(errors="replace"))
    except OSError:
        return "unknown CPU", "unknown vector width"
