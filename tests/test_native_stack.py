"""The compiled population kernel: the same numbers as the XLA stack, member by member, and
a clear refusal where it cannot be built."""

from __future__ import annotations

import json
import logging
import os
import platform
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from highway_study import record
from highway_study.config import ConfigError
from highway_study.nn import fast_stack, native_kernel, native_stack
from highway_study.training import population as pop
from highway_study.training import stack_choice
from faults import fault
from compose import compose_config
from keras_oracle import fit_alone
from test_population import SMALL, configs, rows

RELU, TANH = keras.activations.get("relu"), keras.activations.get("tanh")


def needs_kernel(step=None):
    """What `step` (default: load the kernel) returns, or a skip with the reason where the
    kernel cannot be built here (no C compiler, no OpenMP)."""
    try:
        return (step or native_kernel.load)()
    except native_kernel.NativeUnavailable as error:
        pytest.skip(f"the compiled kernel is unavailable here: {error}")


@pytest.fixture
def compiled():
    """The loaded kernel, or the test skipped with the reason it cannot be had here."""
    return needs_kernel()


def stacked(depth, members, batch, width, seed=0, carry_bias=-2.0):
    """x [K, B, W], kernel [L, K, W, 2W], bias [L, K, 1, 2W], as a population stores them."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((members, batch, width)).astype(np.float32)
    kernel = (rng.standard_normal((depth, members, width, 2 * width)) * 0.3).astype(np.float32)
    bias = np.full((depth, members, 1, 2 * width), 0.1, np.float32)
    bias[..., width:] = carry_bias
    return x, kernel, bias


def population_xla(x, kernel, bias, activation):
    """The XLA stack as a population calls it (one stream: the member axis is not cut)."""
    return fast_stack.highway_stack(x, kernel, bias, activation, streams=1)


def outputs_and_gradients(stack, x, kernel, bias, activation, dy):
    x, kernel, bias = map(tf.constant, (x, kernel, bias))
    with tf.GradientTape() as tape:
        tape.watch([x, kernel, bias])
        y = stack(x, kernel, bias, activation)
        loss = tf.reduce_sum(y * dy)
    return [y.numpy()] + [g.numpy() for g in tape.gradient(loss, [x, kernel, bias])]


# (batch, width): multiples of 5 take the kernel's own small matrix product, others BLAS.
# Its column blocks: 16 wide, then a tail of one or two vectors, masked unless a multiple of 8;
# (20, 10) ends products in a masked vector (4 columns of 20) and a masked second vector (10),
# (15, 40) in a whole vector (the 8 last of dx's 40), (50, 50) is the study's shape.
@pytest.mark.parametrize("batch, width", [(20, 10), (15, 40), (50, 50), (7, 12)])
@pytest.mark.parametrize("activation", [RELU, TANH], ids=["relu", "tanh"])
def test_outputs_and_gradients_match_the_xla_stack(batch, width, activation, compiled):
    x, kernel, bias = stacked(6, 3, batch, width)
    dy = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    ours = outputs_and_gradients(native_stack.population_stack, x, kernel, bias, activation, dy)
    xla = outputs_and_gradients(population_xla, x, kernel, bias, activation, dy)
    for name, a, b in zip(("y", "dx", "dkernel", "dbias"), ours, xla):
        assert a.shape == b.shape, name
        # to float rounding of each tensor's largest value: a sum of 50 products of values
        # up to 8 cancels to 0.3 here, in another order than XLA's
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(b).max()),
                                   err_msg=name)
    evaluated = native_stack.population_stack(*map(tf.constant, (x, kernel, bias)), activation,
                                              training=False)
    np.testing.assert_allclose(evaluated.numpy(), xla[0], rtol=1e-5, atol=1e-5)



@pytest.mark.parametrize("batch, width", [(20, 10), (7, 12)])
@pytest.mark.parametrize("activation", [RELU, TANH], ids=["relu", "tanh"])
def test_gate_means_match_the_xla_stack_member_by_member(batch, width, activation, compiled):
    """The gate activity the kernel records: each member's per-layer mean transform gate, as
    fast_stack computes it for a run alone, whoever else is in the population."""
    x, kernel, bias = stacked(6, 3, batch, width, carry_bias=-1.0)
    ours = native_stack.gate_means(x, kernel, bias, activation)
    assert ours.shape == (3, 6)
    for k in range(3):
        alone = fast_stack.gate_means(tf.constant(x[k]), tf.constant(kernel[:, k]),
                                      tf.constant(bias[:, k, 0]), activation)
        np.testing.assert_allclose(ours[k], alone.numpy(), rtol=1e-5)
    by_itself = native_stack.gate_means(x[1:2], kernel[:, 1:2], bias[:, 1:2], activation)
    np.testing.assert_array_equal(by_itself[0], ours[1])

def test_a_non_finite_member_leaves_the_others_bit_identical(compiled):
    lib = compiled
    x, kernel, bias = stacked(5, 3, 10, 10)
    clean = lib.forward("relu", x, kernel, bias, keep=lib.buffers(5, 3, 10, 10))
    poisoned_kernel = kernel.copy()
    poisoned_kernel[2, 1, 0, 0] = np.nan
    keep = lib.buffers(5, 3, 10, 10)
    poisoned = lib.forward("relu", x, poisoned_kernel, bias, keep=keep)
    assert np.isnan(poisoned[1]).any()
    np.testing.assert_array_equal(poisoned[[0, 2]], clean[[0, 2]])
    dy = np.ones_like(x)
    dx, dkernel, _ = lib.backward("relu", dy, poisoned_kernel, keep)
    clean_dx, clean_dkernel, _ = lib.backward("relu", dy, kernel,
                                              _kept(lib, x, kernel, bias))
    np.testing.assert_array_equal(dx[[0, 2]], clean_dx[[0, 2]])
    np.testing.assert_array_equal(dkernel[:, [0, 2]], clean_dkernel[:, [0, 2]])


def _kept(lib, x, kernel, bias):
    keep = lib.buffers(kernel.shape[0], kernel.shape[1], x.shape[1], x.shape[2])
    lib.forward("relu", x, kernel, bias, keep=keep)
    return keep


def test_a_backward_pass_without_its_forward_pass_is_refused(compiled):
    """What a forward pass keeps serves one backward pass; a second one must fail loudly
    rather than read another step's activations."""
    x, kernel, bias = map(tf.constant, stacked(3, 2, 5, 5))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = native_stack.population_stack(x, kernel, bias, RELU)
    tape.gradient(y, x)
    with pytest.raises((RuntimeError, tf.errors.OpError), match="without its forward pass"):
        tape.gradient(y, x)


def test_the_kernel_uses_the_threads_the_job_was_given(monkeypatch):
    threading = tf.config.threading
    monkeypatch.setattr(threading, "get_inter_op_parallelism_threads", lambda: 1)
    assert native_stack.kernel_threads() == 1  # HIGHWAY_STUDY_THREADS=1, say
    monkeypatch.setattr(threading, "get_inter_op_parallelism_threads", lambda: 0)
    assert native_stack.kernel_threads() == native_kernel.default_threads()


@pytest.fixture
def native(compiled):
    return ("model.implementation=scan_native",)


def test_a_member_trains_as_keras_fit_trains_it_alone(tmp_path, native):
    """Members through the kernel against Keras's own training step: every number within
    float rounding, and the record says the kernel ran."""
    cfgs = configs((-1, 0, 0.01), (-3, 1, 0.02), (-2, 0, 0.005),
                   extra=("width=10", "batch_size=20", "eval_every=7", *native))
    together = pop.train_population(cfgs, [tmp_path / f"p{i}" for i in range(3)])
    for i, cfg in enumerate(cfgs):
        oracle = fit_alone(cfg)
        assert together[i].status == "completed"
        assert together[i].engine["kernel"] == "native"
        np.testing.assert_allclose(together[i].test_loss, oracle["test"][0], rtol=2e-5)
        for row, (step, val_loss, _) in zip(rows(tmp_path / f"p{i}"), oracle["epochs"]):
            assert row["step"] == step
            np.testing.assert_allclose(row["val_loss"], val_loss, rtol=2e-5)


def test_a_diverging_member_leaves_the_others_bit_identical(tmp_path, native):
    healthy = [(-1, 0, 0.01), (-3, 1, 0.01)]
    summaries = pop.train_population(configs(healthy[0], (-2, 2, 1e12), healthy[1],
                                             extra=native),
                                     [tmp_path / "w0", tmp_path / "bad", tmp_path / "w1"])
    assert summaries[1].status == "diverged"
    pop.train_population(configs(healthy[0], (-2, 2, 0.01), healthy[1], extra=native),
                         [tmp_path / "n0", tmp_path / "ok", tmp_path / "n1"])
    for kept, normal in (("w0", "n0"), ("w1", "n1")):
        assert rows(tmp_path / kept) == rows(tmp_path / normal)
        assert record.read_summary(tmp_path / kept).test_loss == \
            record.read_summary(tmp_path / normal).test_loss


def choice(*overrides):
    return stack_choice.choose_kernel(compose_config(*SMALL, *overrides))


def test_scan_takes_the_kernel_for_deep_stacks_only(compiled):
    deep = stack_choice.NATIVE_FROM_DEPTH
    assert choice(f"depth={deep - 1}")[0] == "xla"
    assert choice(f"depth={deep}") == ("native", f"model.implementation=scan, depth {deep}")
    assert choice("depth=1000", "model.implementation=scan_xla")[0] == "xla"
    assert choice("depth=1", "model.implementation=scan_native")[0] == "native"
    assert choice("model.implementation=layers")[0] == "keras"
    assert choice("model=plain_fc")[0] == "vectorized"
    assert choice("model=plain_fc", "model.implementation=layers")[0] == "keras"
    assert choice("model=highway_conv")[0] == "keras"


def test_a_gpu_never_gets_the_cpu_kernel(compiled, monkeypatch):
    monkeypatch.setattr(stack_choice, "gpu_present", lambda: True)
    assert choice("depth=1000") == (
        "xla", "a GPU is present and the compiled kernel runs on CPUs only")


def test_an_activation_the_kernel_lacks_falls_back_or_is_refused():
    sigmoid = keras.activations.get("sigmoid")
    assert "sigmoid" in native_stack.available(sigmoid)
    assert choice("depth=1000", "model.activation=sigmoid")[0] == "xla"
    with pytest.raises(ConfigError, match="model.implementation=scan_native cannot be used "
                                          "here: the native kernel computes only relu, tanh"):
        choice("depth=1000", "model.activation=sigmoid", "model.implementation=scan_native")


@fault("no C compiler (or no OpenMP) for the compiled kernel",
       "`CC=/no/such/cc python -m highway_study -m depth=500 seed=0,1`",
       "deep populations keep the XLA stack (logged, and recorded in summary.json's `engine`); "
       "with `model.implementation=scan_native`, one sentence: `model.implementation="
       "scan_native cannot be used here: no C compiler: ...`")
def test_no_compiler_means_no_kernel_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setenv(native_kernel.CACHE_ENV, str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    with pytest.raises(native_kernel.NativeUnavailable, match="no C compiler.*no-such-cc"):
        native_kernel.build()
    monkeypatch.setattr(native_stack.native_kernel, "load", native_kernel.load.__wrapped__)
    assert "no C compiler" in native_stack.available(RELU)
    kernel, why = choice("depth=1000")
    assert kernel == "xla" and "no C compiler" in why
    with pytest.raises(ConfigError, match="model.implementation=scan_native cannot be used "
                                          "here: no C compiler"):
        choice("depth=1000", "model.implementation=scan_native")


def test_a_compiler_that_fails_is_reported_not_raised_through(tmp_path, monkeypatch):
    monkeypatch.setenv(native_kernel.CACHE_ENV, str(tmp_path))
    monkeypatch.setenv("CC", "false")  # exists, and fails whatever it is asked
    with pytest.raises(native_kernel.NativeUnavailable,
                       match=r"false could not build highway_population\.c with -O3"):
        native_kernel.build()
    assert not list((tmp_path / "native").glob("*.so"))  # nothing half-built left behind
    assert len(list((tmp_path / "native").glob("*.so.failed"))) == 1  # the failure, kept


def test_the_build_is_cached_per_source_and_compiler(tmp_path, monkeypatch):
    monkeypatch.setenv(native_kernel.CACHE_ENV, str(tmp_path))
    monkeypatch.delenv("CC", raising=False)
    first = needs_kernel(native_kernel.build)
    assert first.parent == tmp_path / "native" and first.exists()
    built_at = first.stat().st_mtime_ns
    assert native_kernel.build() == first and first.stat().st_mtime_ns == built_at
    edited = tmp_path / "edited.c"
    edited.write_text(native_kernel.SOURCE.read_text() + "\n/* edited */\n")
    monkeypatch.setattr(native_kernel, "SOURCE", edited)
    assert native_kernel.build() != first  # another source: another library


@fault("`model.implementation=fast`",
       "`python -m highway_study model.implementation=fast` (a run, or a sweep)",
       "exit 2 before anything trains: `Invalid config: model.implementation='fast' is not "
       "allowed: use one of scan, scan_xla, scan_native, layers, scan_autodiff.`")
@pytest.mark.parametrize("launch", [(), ("-m", "seed=0,1", "hydra/launcher=population")],
                         ids=["run", "population sweep"])
def test_a_bad_implementation_ends_the_command_in_one_sentence(run_cli, tmp_path, launch):
    result = run_cli(*launch, "data=synthetic", "depth=2", "model.implementation=fast",
                     f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert "Traceback" not in result.stderr
    assert "model.implementation='fast' is not allowed: use one of scan, scan_xla, " \
        "scan_native, layers, scan_autodiff." in result.stderr + result.stdout
    if not launch:
        assert result.returncode == 2
    assert not [p for p in tmp_path.rglob("summary.json")
                if json.loads(p.read_text())["status"] != "failed"]  # nothing trained


# The cache and the build, hardened: a private folder, hash-checked libraries, a time limit,
# failures remembered, a CPU fingerprint everywhere. Every test builds in its own tmp_path.

@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache of the test's own, and a `load` that remembers nothing from earlier tests."""
    monkeypatch.setenv(native_kernel.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(native_kernel, "load",
                        native_kernel._remembered(native_kernel.load.__wrapped__))
    return tmp_path / "native"


def fake_compiler(tmp_path, monkeypatch, body):
    """$CC as a shell script running `body` for a build (its version answered at once);
    every build it is asked for is counted in tmp_path/builds."""
    script = tmp_path / "fake-cc"
    script.write_text(f'#!/bin/sh\nif [ "$1" = --version ]; then echo fake-cc 1.0; exit 0; fi\n'
                      f'echo build >> "{tmp_path / "builds"}"\n{body}\n')
    script.chmod(0o755)
    monkeypatch.setenv("CC", str(script))
    return lambda: len((tmp_path / "builds").read_text().splitlines())


def gone(pid, within_s=5.0) -> bool:
    """Whether process pid has ended (a zombie awaiting its reaper counts) within within_s."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def one_warning(caplog, library):
    warnings = [r for r in caplog.records if r.name == "highway_study"
                and r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    said = warnings[0].getMessage()
    assert str(library) in said and said.endswith("it is rebuilt.")
    return said


def test_without_a_compiler_kernel_tests_skip_with_the_reason(cache, monkeypatch):
    monkeypatch.setenv("CC", str(cache / "no-such-cc"))
    with pytest.raises(pytest.skip.Exception, match="unavailable here: no C compiler.*no-such"):
        needs_kernel()


def test_the_cache_folder_is_private_or_refused(cache, tmp_path, monkeypatch):
    fake_compiler(tmp_path, monkeypatch, "exit 1")
    with pytest.raises(native_kernel.NativeUnavailable, match="could not build"):
        native_kernel.build()
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    cache.chmod(0o777)
    with pytest.raises(native_kernel.NativeUnavailable,
                       match=rf"cache {cache} is not used because group or others may write "
                             rf"into it \(mode 777\)"):
        native_kernel.build()
    cache.chmod(0o700)
    owner = cache.stat().st_uid
    monkeypatch.setattr(native_kernel.os, "getuid", lambda: owner + 1)
    with pytest.raises(native_kernel.NativeUnavailable,
                       match=rf"cache {cache} is not used because it is owned by another user"):
        native_kernel.build()


def test_a_truncated_library_is_rebuilt_never_loaded(cache, caplog):
    """Loading a truncated library used to end the process with SIGBUS."""
    library = needs_kernel(native_kernel.build)
    whole = library.read_bytes()
    with open(library, "r+b") as file:
        file.truncate(len(whole) // 2)
    with pytest.raises(native_kernel.NativeUnavailable, match="does not match the sha256"):
        native_kernel.Kernel(library)  # checked before ctypes sees it
    with caplog.at_level(logging.WARNING, logger="highway_study"):
        lib = native_kernel.load()
    assert "does not match the sha256" in one_warning(caplog, library)
    assert lib.path == library and library.stat().st_size == len(whole)
    x, kernel, bias = stacked(2, 2, 5, 5)
    xla = population_xla(*map(tf.constant, (x, kernel, bias)), RELU).numpy()
    np.testing.assert_allclose(lib.forward("relu", x, kernel, bias), xla, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("how", ["planted", "unrecorded"])
def test_a_planted_or_unrecorded_library_is_rebuilt_never_loaded(cache, tmp_path, caplog,
                                                                   how):
    """Whoever writes under the predictable name must not choose the code that runs."""
    library = needs_kernel(native_kernel.build)
    ran = tmp_path / "planted-code-ran"
    if how == "planted":
        planted = tmp_path / "planted.c"
        planted.write_text('#include <stdio.h>\n__attribute__((constructor)) static void run'
                           f'(void) {{ FILE *f = fopen("{ran}", "w"); if (f) fclose(f); }}\n')
        subprocess.run([os.environ.get("CC") or "cc", "-shared", "-fPIC", str(planted), "-o",
                        str(library)], check=True)
    else:
        library.with_name(library.name + ".json").unlink()
    with caplog.at_level(logging.WARNING, logger="highway_study"):
        lib = native_kernel.load()
    said = one_warning(caplog, library)
    assert ("does not match" if how == "planted" else "has no recorded hash") in said
    assert not ran.exists() and lib.path == library
    assert native_kernel._mismatch(library) is None  # what is loaded is what was recorded


def test_a_compiler_that_hangs_is_stopped_and_remembered(cache, tmp_path, monkeypatch):
    builds = fake_compiler(tmp_path, monkeypatch,
                           f'sleep 60 &\necho $! > "{tmp_path / "pid"}"\nwait')
    monkeypatch.setattr(native_kernel, "BUILD_TIMEOUT_S", 2)
    started = time.monotonic()
    with pytest.raises(native_kernel.NativeUnavailable,
                       match=r"fake-cc did not finish building highway_population\.c within "
                             r"2 s \(it was stopped\)\.$"):
        native_kernel.build()
    assert time.monotonic() - started < 10
    assert gone(int((tmp_path / "pid").read_text()))  # the compiler's children too
    with pytest.raises(native_kernel.NativeUnavailable, match="within 2 s.*remembered in"):
        native_kernel.build()
    assert builds() == 1


def test_an_interrupted_build_leaves_no_compiler_running(cache, tmp_path, monkeypatch):
    """SIGTERM or Ctrl-C, when they raise in this process, end the compiler with it."""
    builds = fake_compiler(tmp_path, monkeypatch,
                           f'sleep 60 &\necho $! > "{tmp_path / "pid"}"\nwait')

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 1.0)
        with pytest.raises(KeyboardInterrupt):
            native_kernel.build()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert builds() == 1 and gone(int((tmp_path / "pid").read_text()))
    assert not list(cache.glob("*.failed"))  # an interruption is not the compiler's failure


def test_a_failed_build_is_remembered_across_calls_and_processes(cache, tmp_path,
                                                                 monkeypatch):
    builds = fake_compiler(tmp_path, monkeypatch, 'echo "fake-cc: no OpenMP" >&2\nexit 1')
    with pytest.raises(native_kernel.NativeUnavailable, match=r"\(fake-cc: no OpenMP\)\.$"):
        native_kernel.build()
    with pytest.raises(native_kernel.NativeUnavailable,
                       match=r"\(fake-cc: no OpenMP\) \(remembered in .*\.so\.failed: delete "
                             r"it to try again\)\.$"):
        native_kernel.build()
    fresh = subprocess.run(
        [sys.executable, "-c", "from highway_study.nn import native_kernel\n"
                               "native_kernel.build()"],
        capture_output=True, text=True, env=os.environ, cwd=Path(__file__).parents[1])
    assert fresh.returncode == 1 and "remembered in" in fresh.stderr
    assert builds() == 1
    with pytest.raises(native_kernel.NativeUnavailable, match="remembered"):
        native_kernel.load()
    for marker in cache.glob("*.failed"):
        marker.unlink()
    with pytest.raises(native_kernel.NativeUnavailable, match="remembered"):
        native_kernel.load()  # this process remembers without asking the disk again
    assert builds() == 1
    edited = tmp_path / "edited.c"
    edited.write_text(native_kernel.SOURCE.read_text() + "\n/* edited */\n")
    monkeypatch.setattr(native_kernel, "SOURCE", edited)
    with pytest.raises(native_kernel.NativeUnavailable, match="no OpenMP\\)\\.$"):
        native_kernel.build()  # another source: another key, another try
    assert builds() == 2


ARM = """processor\t: {n}
BogoMIPS\t: {bogomips}
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x3
CPU part\t: {part}
CPU revision\t: 1
"""


def fingerprint(tmp_path, monkeypatch, text):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(text)
    monkeypatch.setattr(native_kernel, "CPUINFO", cpuinfo)
    return native_kernel._cpu_fingerprint()


def test_the_cpu_fingerprint_names_the_cpu_on_arm_and_elsewhere(tmp_path, monkeypatch):
    arm = fingerprint(tmp_path, monkeypatch, "".join(
        ARM.format(n=n, bogomips=b, part="0xd0c") + "\n" for n, b in ((0, "50.00"), (1, "50.00"))))
    assert "features: fp asimd evtstrm" in arm and "cpu part: 0xd0c" in arm
    assert "cpu implementer: 0x41" in arm and "bogomips" not in arm and "processor" not in arm
    three_cores = "".join(ARM.format(n=n, bogomips="48.00", part="0xd0c") + "\n"
                          for n in range(3))
    assert fingerprint(tmp_path, monkeypatch, three_cores) == arm
    assert fingerprint(tmp_path, monkeypatch, ARM.format(n=0, bogomips="50.00",
                                                         part="0xd40")) != arm  # another core
    x86 = "processor\t: {}\nmodel name\t: AMD EPYC\ncpu MHz\t\t: {}\nflags\t\t: fpu avx2\n"
    one = fingerprint(tmp_path, monkeypatch, x86.format(0, "2994.3"))
    assert one == fingerprint(tmp_path, monkeypatch, x86.format(7, "1500.0"))
    assert "model name: AMD EPYC" in one and "flags: fpu avx2" in one and "MHz" not in one
    riscv = fingerprint(tmp_path, monkeypatch, "processor\t: 0\nhart\t\t: 1\n"
                                               "isa\t\t: rv64imafdc\nmmu\t\t: sv39\n"
                                               "uarch\t\t: sifive,u74-mc\n")
    assert riscv == "isa: rv64imafdc\nmmu: sv39\nuarch: sifive,u74-mc"
    monkeypatch.setattr(native_kernel, "CPUINFO", tmp_path / "no-cpuinfo")  # macOS, say
    assert native_kernel._cpu_fingerprint() in (platform.processor(), platform.machine())
    assert native_kernel._cpu_fingerprint()
