"""The compiled population kernel (native/highway_population.c): built once, cached, loaded.

Why a C kernel: at width 50 a layer is three 50x50x100 matrix products and a few thousand
elementwise operations per member, which XLA:CPU runs far below the machine's matmul rate
in a deep population (measured in docs/benchmark.md). The C loop takes one member through all its layers on one core, with a
register-blocked product of its own and the gate maths fused, the next layer's operands
prefetched and what is read only after the pass written with streaming stores; how much
faster than XLA, per depth: docs/benchmark.md, "A compiled kernel" and "The kernel tuned".

The library is compiled on first use with the machine's C compiler (`$CC`, else `cc`) and
OpenMP, for this CPU (-march=native), into a cache folder keyed by the source, the flags,
the compiler and the CPU, so a shared home on a cluster of mixed CPUs keeps one build per
kind. BLAS is SciPy's (its `cython_blas` sgemm), found at load time, so nothing is linked.
Where no compiler or OpenMP is at hand, `load()` says why and callers keep the XLA path.

Loading a library runs its code, so the cache is treated as untrusted input: the folder
must be private (mode 0o700, ours), and a library is loaded only if its sha256 matches the
one recorded when it was built (`<library>.json`); one that does not (truncated, damaged,
replaced, unrecorded) is rebuilt. A build that fails or outlives BUILD_TIMEOUT_S is
remembered (`<library>.failed`), so a sweep does not pay for it once per population.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import json
import logging
import os
import platform
import shutil
import signal
import stat
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
BUILD_TIMEOUT_S = 300  # a compiler still running after this is stuck: stopped, remembered
CPUINFO = Path("/proc/cpuinfo")
# /proc/cpuinfo keys naming the CPU kind and its features (x86, ARM, POWER, RISC-V, s390);
# per-moment lines (MHz, bogomips, processor and core numbers) would change the key by chance.
CPU_KEYS = frozenset({"vendor_id", "cpu family", "model", "model name", "flags", "features",
                      "cpu implementer", "cpu architecture", "cpu variant", "cpu part",
                      "cpu revision", "cpu", "cpu model", "isa", "uarch", "mmu"})
log = logging.getLogger("highway_study")


class NativeUnavailable(RuntimeError):
    """The kernel cannot be built or loaded here; the message says why."""


def cache_dir() -> Path:
    """$HIGHWAY_STUDY_CACHE, else $XDG_CACHE_HOME/highway_study, else ~/.cache/highway_study."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]) / "native"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "highway_study" / "native"


def _private_folder() -> Path:
    """cache_dir(), created 0o700; refused if another user owns it or may write into it,
    since whoever can place a file there chooses the code this process runs."""
    folder = cache_dir()
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.stat()
    except OSError as error:
        raise NativeUnavailable(f"the kernel cannot be built in {folder}: {error}.") from None
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        why = f"it is owned by another user (uid {info.st_uid})"
    elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        why = f"group or others may write into it (mode {stat.S_IMODE(info.st_mode):o})"
    else:
        return folder
    raise NativeUnavailable(f"the kernel cache {folder} is not used because {why}: make it "
                            f"yours with mode 700, or set {CACHE_ENV} to another folder.")


def _compiler() -> str:
    compiler = os.environ.get("CC") or "cc"
    if shutil.which(compiler) is None:
        raise NativeUnavailable(f"no C compiler: {compiler!r} is not on PATH (set CC).")
    return compiler


def _run(argv: list[str], doing: str) -> subprocess.CompletedProcess:
    """argv within BUILD_TIMEOUT_S, in a session of its own, so that a timeout or an
    interrupt of this process (Ctrl-C, SIGTERM turned into an exception) kills the compiler
    with everything it started (cc1, as, ld), not the driver alone."""
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as process:
        try:
            out, err = process.communicate(timeout=BUILD_TIMEOUT_S)
        except BaseException as error:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except OSError:  # the whole group has exited already
                pass
            process.wait()
            if isinstance(error, subprocess.TimeoutExpired):
                raise NativeUnavailable(f"{argv[0]} did not finish {doing} within "
                                        f"{BUILD_TIMEOUT_S} s (it was stopped).") from None
            raise
    return subprocess.CompletedProcess(argv, process.returncode, out, err)


def _cpu_fingerprint() -> str:
    """What -march=native depends on: the lines of /proc/cpuinfo that name the CPU's kind and
    features (CPU_KEYS), else what the platform module says."""
    try:
        text = CPUINFO.read_text(errors="replace")
    except OSError:
        text = ""
    found = set()
    for line in text.splitlines():
        key, colon, value = line.partition(":")
        if colon and key.strip().lower() in CPU_KEYS:
            found.add(f"{key.strip().lower()}: {' '.join(value.split())}")
    return "\n".join(sorted(found)) or platform.processor() or platform.machine()


def _library_path(folder: Path, compiler: str) -> Path:
    version = _run([compiler, "--version"], "printing its version").stdout
    key = hashlib.sha256("\0".join([SOURCE.read_text(), " ".join(FLAGS), version,
                                    platform.machine(), _cpu_fingerprint()]).encode())
    return folder / f"highway_population-{key.hexdigest()[:16]}.so"


def _record(library: Path) -> Path:
    return library.with_name(library.name + ".json")


def _failure(library: Path) -> Path:
    return library.with_name(library.name + ".failed")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_atomically(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False) as file:
        file.write(text)
    os.replace(file.name, path)


def _mismatch(library: Path) -> str | None:
    """None if the library is what its build recorded, else what is wrong with it."""
    try:
        recorded = json.loads(_record(library).read_text())["sha256"]
    except FileNotFoundError:
        return "has no recorded hash"
    except (OSError, ValueError, KeyError, TypeError):
        return f"has an unreadable hash record ({_record(library).name})"
    try:
        actual = _sha256(library)
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    if actual != recorded:
        return "does not match the sha256 recorded at its build (truncated, damaged or replaced)"
    return None


def _verified(library: Path) -> bool:
    """Whether the cached library may be loaded; one that may not is removed, with a
    warning, so that it is rebuilt."""
    if not library.exists() and not _record(library).exists():
        return False
    problem = _mismatch(library)
    if problem is None:
        return True
    log.warning("The compiled kernel %s %s; it is rebuilt.", library, problem)
    library.unlink(missing_ok=True)
    _record(library).unlink(missing_ok=True)
    return False


def build() -> Path:
    """The verified library in the cache, compiled if needed (once per source, flags,
    compiler and CPU); a build that failed before is not tried again."""
    compiler = _compiler()
    target = _library_path(_private_folder(), compiler)
    try:
        with FileLock(str(target) + ".lock"):  # two processes starting at once build it once
            if _verified(target):
                return target
            failure = _failure(target)
            if failure.exists():
                said = failure.read_text().strip().rstrip(".")
                raise NativeUnavailable(f"{said} (remembered in {failure}: delete it to try "
                                        f"again).")
            try:
                return _compile(compiler, target)
            except NativeUnavailable as error:
                with contextlib.suppress(OSError):  # unremembered, the reason still stands
                    _write_atomically(failure, str(error))
                raise
    except OSError as error:
        raise NativeUnavailable(f"the kernel cannot be built in {target.parent}: {error}.") \
            from None


def build_source(source: Path, target: Path) -> Path:
    """Another version of the kernel's source built as `build` builds its own, into `target`
    (a private folder of the caller's), with its hash recorded so that `Kernel` loads it."""
    return _compile(_compiler(), target, source)


def _compile(compiler: str, target: Path, source: Path = SOURCE) -> Path:
    """`source` built with FLAGS into `target`, its hash recorded beside it."""
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        partial = Path(tmp) / target.name
        done = _run([compiler, *FLAGS, str(source), "-o", str(partial), "-lm"],
                    f"building {source.name}")
        if done.returncode != 0:
            said = done.stderr.strip().splitlines()
            raise NativeUnavailable(
                f"{compiler} could not build {source.name} with {' '.join(FLAGS)}"
                + (f" ({said[-1]})." if said else "."))
        digest = _sha256(partial)  # what the compiler wrote, before it is in the shared name
        os.replace(partial, target)  # readers never see a half-written library
    _write_atomically(_record(target), json.dumps({"sha256": digest}))  # after the library
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
        problem = _mismatch(path)  # never hand ctypes a library nobody checked
        if problem is not None:
            raise NativeUnavailable(f"the kernel {path} {problem}, so it is not loaded.")
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


def _remembered(function):
    """functools.cache that also remembers a NativeUnavailable: a sweep asks for the kernel
    once per population, and a kernel that cannot be had is not tried again each time.
    `cache_clear()` forgets; `__wrapped__` is the function itself."""
    outcome = []

    @functools.wraps(function)
    def remembered():
        if not outcome:
            try:
                outcome.append(function())
            except NativeUnavailable as error:
                outcome.append(error)
        if isinstance(outcome[0], NativeUnavailable):
            raise NativeUnavailable(str(outcome[0])) from None
        return outcome[0]

    remembered.cache_clear = outcome.clear
    return remembered


@_remembered
def load() -> Kernel:
    """The kernel, built if needed, loaded once per process; raises NativeUnavailable (with
    the reason, the same every time) where it cannot be."""
    if sys.platform == "win32":
        raise NativeUnavailable("the native kernel is built for Linux and macOS only.")
    return Kernel(build())
