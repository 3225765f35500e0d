"""The compiled population kernel (native/highway_population.c): built once, cached, loaded.

Why a C kernel: at width 50 a layer is three 50x50x100 matrix products and a few thousand
elementwise operations per member, which XLA:CPU ran at about 20 GFLOP/s per core in a deep
population. The C loop takes one member through all its layers on one core, with a
register-blocked product of its own and the gate maths fused, the next layer's operands
prefetched and what is read only after the pass written with streaming stores; how much
faster than XLA, per depth: docs/benchmark.md, "A compiled kernel" and "The kernel tuned".

The library is compiled on first use with the machine's C compiler (`$CC`, else `cc`) and
OpenMP, for this CPU (-march=native), into a cache folder keyed by the source, the flags,
the compiler and the CPU, so a shared home on a cluster of mixed CPUs keeps one build per
kind. BLAS is SciPy's (its `cython_blas` sgemm), found at load time, so nothing is linked.
Where no compiler or OpenMP is at hand, `load()` says why and callers keep the XLA path.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from filelock import FileLock

SOURCE = Path(__file__).with_name("native") / "highway_population.c"
CACHE_ENV = "HIGHWAY_STUDY_CACHE"
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fopenmp", "-shared", "-fPIC")
ACTIVATIONS = {"relu": 0, "tanh": 1}  # the H activations the kernel computes


class NativeUnavailable(RuntimeError):
    """The kernel cannot be built or loaded here; the message says why."""


def cache_dir() -> Path:
    """$HIGHWAY_STUDY_CACHE, else $XDG_CACHE_HOME/highway_study, else ~/.cache/highway_study."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]) / "native"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "highway_study" / "native"


def _compiler() -> str:
    compiler = os.environ.get("CC") or "cc"
    if shutil.which(compiler) is None:
        raise NativeUnavailable(f"no C compiler: {compiler!r} is not on PATH (set CC).")
    return compiler


def _cpu_fingerprint() -> str:
    """What -march=native depends on: the CPU's model and feature flags where Linux tells."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return "\n".join(sorted({ln for ln in lines if ln.startswith(("model name", "flags"))}))
    except OSError:
        return platform.processor() or platform.machine()


def _library_path(compiler: str) -> Path:
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256("\0".join([SOURCE.read_text(), " ".join(FLAGS), version,
                                    platform.machine(), _cpu_fingerprint()]).encode())
    return cache_dir() / f"highway_population-{key.hexdigest()[:16]}.so"


def build() -> Path:
    """Compile the kernel into the cache (once per source, flags, compiler and CPU)."""
    compiler = _compiler()
    target = _library_path(compiler)
    if target.exists():
        return target
    try:
        return _compile(compiler, target)
    except OSError as error:
        raise NativeUnavailable(f"the kernel cannot be built in {target.parent}: {error}.") \
            from None


def _compile(compiler: str, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):  # two processes starting at once build it once
        if target.exists():
            return target
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            partial = Path(tmp) / target.name
            done = subprocess.run([compiler, *FLAGS, str(SOURCE), "-o", str(partial), "-lm"],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                said = done.stderr.strip().splitlines()
                raise NativeUnavailable(
                    f"{compiler} could not build {SOURCE.name} with {' '.join(FLAGS)}"
                    + (f" ({said[-1]})." if said else "."))
            os.replace(partial, target)  # readers never see a half-written library
    return target


def _scipy_sgemm() -> int:
    """The address of SciPy's BLAS sgemm (Fortran interface), from its cython_blas table."""
    from scipy.linalg import cython_blas

    capsule = cython_blas.__pyx_capi__["sgemm"]
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object,
                                                                   ctypes.c_char_p]
    return get_pointer(capsule, get_name(capsule))


class Kernel:
    """The loaded library, with NumPy-facing forward and backward passes. `threads`: how
    many cores a pass spreads the members over (None: `default_threads()`)."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self._lib = ctypes.CDLL(str(path))
            self._lib.hs_set_sgemm(ctypes.c_void_p(_scipy_sgemm()))
        except (OSError, AttributeError, KeyError, ImportError) as error:
            raise NativeUnavailable(f"the kernel built in {path} cannot be loaded: {error}.") \
                from None
        _one_blas_thread()

    def forward(self, activation: str, x, kernel, bias, keep=None,
                threads: int | None = None) -> np.ndarray:
        """y [K, B, W] of the stack on x [K, B, W]; `keep` (from `buffers`) is filled for
        `backward` when given."""
        return self._forward(activation, x, kernel, bias, keep, None, threads)

    def gate_means(self, activation: str, x, kernel, bias,
                   threads: int | None = None) -> np.ndarray:
        """[K, L]: every member's mean transform gate per layer on its batch x [K, B, W]."""
        means = np.empty((kernel.shape[1], kernel.shape[0]), np.float32)
        self._forward(activation, x, kernel, bias, None, means, threads)
        return means

    def _forward(self, activation, x, kernel, bias, keep, gate_means, threads):
        depth, members, width = kernel.shape[0], kernel.shape[1], kernel.shape[2]
        x, kernel, bias = _contiguous(x, kernel, bias)
        y = aligned_empty(x.shape)
        kept = (None, None) if keep is None else (_ptr(keep[0]), _ptr(keep[1]))
        self._lib.hs_forward(ACTIVATIONS[activation], depth, members, x.shape[1], width,
                             _ptr(x), _ptr(kernel), _ptr(bias), _ptr(y), *kept,
                             None if gate_means is None else _ptr(gate_means),
                             threads or default_threads())
        return y

    def backward(self, activation: str, dy, kernel, keep, dkernel=None,
                 threads: int | None = None):
        """(dx, kernel gradient, bias gradient) from dy and what `forward` kept; the kernel
        gradient is written into `dkernel` when given (an ALIGNed array of kernel's shape)."""
        depth, members, width = kernel.shape[0], kernel.shape[1], kernel.shape[2]
        dy, kernel = _contiguous(dy, kernel)
        dx = aligned_empty(dy.shape)
        dkernel = aligned_empty(kernel.shape) if dkernel is None else dkernel
        dbias = aligned_empty((depth, members, 1, 2 * width))
        self._lib.hs_backward(ACTIVATIONS[activation], depth, members, dy.shape[1], width,
                              _ptr(dy), _ptr(kernel), _ptr(keep[0]), _ptr(keep[1]), _ptr(dx),
                              _ptr(dkernel), _ptr(dbias), threads or default_threads())
        return dx, dkernel, dbias

    @staticmethod
    def buffers(depth: int, members: int, batch: int, width: int):
        """Room for what a training forward pass keeps: every layer's input and gates."""
        return (aligned_empty((members, depth, batch, width)),
                aligned_empty((members, depth, batch, 2 * width)))


ALIGN = 64  # bytes: TensorFlow takes a NumPy result this aligned without copying it


def aligned_empty(shape) -> np.ndarray:
    """An uninitialised float32 array whose data starts on an ALIGN-byte boundary."""
    count = int(np.prod(shape))
    raw = np.empty(count + ALIGN // 4, np.float32)
    start = (-raw.ctypes.data % ALIGN) // 4
    return raw[start:start + count].reshape(shape)


def _contiguous(*arrays):
    return [np.ascontiguousarray(a, dtype=np.float32) for a in arrays]


def _ptr(array) -> ctypes.c_void_p:
    return ctypes.c_void_p(array.ctypes.data)


def _one_blas_thread() -> None:
    """One BLAS thread per kernel thread: the kernel spreads members over the cores itself,
    and BLAS threads of its own inside each (evaluation batches are large enough to start
    them) would only compete for the same cores."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


def default_threads() -> int:
    """The cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


@functools.cache
def load() -> Kernel:
    """The kernel, built if needed, loaded once per process; raises NativeUnavailable (with
    the reason) where it cannot be."""
    if sys.platform == "win32":
        raise NativeUnavailable("the native kernel is built for Linux and macOS only.")
    return Kernel(build())
