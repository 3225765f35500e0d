"""The compiled population kernel: the same numbers as the XLA stack, member by member, and
a clear refusal where it cannot be built."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from highway_study import record
from highway_study.config import STACK_ENV, ConfigError, requested_stack
from highway_study.nn import fast_stack, native_kernel, native_stack
from highway_study.training import population as pop
from highway_study.training import stack_choice, train
from faults import fault
from test_population import configs, rows

RELU, TANH = keras.activations.get("relu"), keras.activations.get("tanh")


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
@pytest.mark.parametrize("batch, width", [(20, 10), (7, 12)])
@pytest.mark.parametrize("activation", [RELU, TANH], ids=["relu", "tanh"])
def test_outputs_and_gradients_match_the_xla_stack(batch, width, activation):
    x, kernel, bias = stacked(6, 3, batch, width)
    dy = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    ours = outputs_and_gradients(native_stack.population_stack, x, kernel, bias, activation, dy)
    xla = outputs_and_gradients(population_xla, x, kernel, bias, activation, dy)
    for name, a, b in zip(("y", "dx", "dkernel", "dbias"), ours, xla):
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=name)
    evaluated = native_stack.population_stack(*map(tf.constant, (x, kernel, bias)), activation,
                                              training=False)
    np.testing.assert_allclose(evaluated.numpy(), xla[0], rtol=1e-5, atol=1e-5)



@pytest.mark.parametrize("batch, width", [(20, 10), (7, 12)])
@pytest.mark.parametrize("activation", [RELU, TANH], ids=["relu", "tanh"])
def test_gate_means_match_the_xla_stack_member_by_member(batch, width, activation):
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

def test_a_non_finite_member_leaves_the_others_bit_identical():
    x, kernel, bias = stacked(5, 3, 10, 10)
    lib = native_kernel.load()
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


def test_a_backward_pass_without_its_forward_pass_is_refused():
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
def native(monkeypatch):
    monkeypatch.setenv(STACK_ENV, "native")


def test_a_member_trains_as_it_would_alone(tmp_path, native):
    """The population launcher's path with the kernel against each run trained alone (Keras,
    XLA): every logged number within float rounding."""
    cfgs = configs((-1, 0, 0.01), (-3, 1, 0.02), (-2, 0, 0.005),
                   extra=("width=10", "batch_size=20", "eval_every=7"))
    together = pop.train_population(cfgs, [tmp_path / f"p{i}" for i in range(3)])
    for i, cfg in enumerate(cfgs):
        alone = train(cfg, tmp_path / f"a{i}", verbose=False)
        assert together[i].status == alone.status == "completed"
        np.testing.assert_allclose(together[i].test_loss, alone.test_loss, rtol=1e-5)
        for a, b in zip(rows(tmp_path / f"p{i}"), rows(tmp_path / f"a{i}")):
            assert a["step"] == b["step"]
            for key in ("train_loss", "val_loss", "val_accuracy", "gate_activity"):
                np.testing.assert_allclose(a[key], b[key], rtol=1e-5, err_msg=key)


def test_a_diverging_member_leaves_the_others_bit_identical(tmp_path, native):
    healthy = [(-1, 0, 0.01), (-3, 1, 0.01)]
    summaries = pop.train_population(configs(healthy[0], (-2, 2, 1e12), healthy[1]),
                                     [tmp_path / "w0", tmp_path / "bad", tmp_path / "w1"])
    assert summaries[1].status == "diverged"
    pop.train_population(configs(healthy[0], (-2, 2, 0.01), healthy[1]),
                         [tmp_path / "n0", tmp_path / "ok", tmp_path / "n1"])
    for kept, normal in (("w0", "n0"), ("w1", "n1")):
        assert rows(tmp_path / kept) == rows(tmp_path / normal)
        assert record.read_summary(tmp_path / kept).test_loss == \
            record.read_summary(tmp_path / normal).test_loss


def test_auto_takes_the_kernel_for_deep_stacks_only(monkeypatch):
    monkeypatch.delenv(STACK_ENV, raising=False)
    deep = stack_choice.NATIVE_FROM_DEPTH
    assert stack_choice.choose_stack(RELU, deep - 1) == "xla"
    assert stack_choice.choose_stack(RELU, deep) == "native"
    monkeypatch.setenv(STACK_ENV, "xla")
    assert stack_choice.choose_stack(RELU, 1000) == "xla"
    monkeypatch.setenv(STACK_ENV, "native")
    assert stack_choice.choose_stack(RELU, 1) == "native"


def test_an_activation_the_kernel_lacks_falls_back_or_is_refused(monkeypatch):
    sigmoid = keras.activations.get("sigmoid")
    assert "sigmoid" in native_stack.available(sigmoid)
    assert stack_choice.choose_stack(sigmoid, 1000, "auto") == "xla"
    with pytest.raises(ConfigError, match="HIGHWAY_STUDY_STACK=native cannot be used here"):
        stack_choice.choose_stack(sigmoid, 1000, "native")


def test_a_bad_stack_value_is_one_clear_sentence(monkeypatch):
    monkeypatch.setenv(STACK_ENV, "fast")
    with pytest.raises(ConfigError, match=r"HIGHWAY_STUDY_STACK='fast' is not allowed: use "
                                          r"one of auto, native, xla\."):
        requested_stack()


@fault("no C compiler (or no OpenMP) for the compiled kernel",
       "`CC=/no/such/cc python -m highway_study -m depth=500 seed=0,1 hydra/launcher=population`",
       "deep populations keep the XLA stack (logged); with `HIGHWAY_STUDY_STACK=native`, one "
       "sentence: `HIGHWAY_STUDY_STACK=native cannot be used here: no C compiler: ...`")
def test_no_compiler_means_no_kernel_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setenv(native_kernel.CACHE_ENV, str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    with pytest.raises(native_kernel.NativeUnavailable, match="no C compiler.*no-such-cc"):
        native_kernel.build()
    monkeypatch.setattr(native_stack.native_kernel, "load", native_kernel.load.__wrapped__)
    assert "no C compiler" in native_stack.available(RELU)
    assert stack_choice.choose_stack(RELU, 1000, "auto") == "xla"
    with pytest.raises(ConfigError, match="HIGHWAY_STUDY_STACK=native cannot be used here: "
                                          "no C compiler"):
        stack_choice.choose_stack(RELU, 1000, "native")


def test_a_compiler_that_fails_is_reported_not_raised_through(tmp_path, monkeypatch):
    monkeypatch.setenv(native_kernel.CACHE_ENV, str(tmp_path))
    monkeypatch.setenv("CC", "false")  # exists, and fails whatever it is asked
    with pytest.raises(native_kernel.NativeUnavailable,
                       match=r"false could not build highway_population\.c with -O3"):
        native_kernel.build()
    assert not list((tmp_path / "native").glob("*.so"))  # nothing half-built left behind


def test_the_build_is_cached_per_source_and_compiler(tmp_path, monkeypatch):
    monkeypatch.setenv(native_kernel.CACHE_ENV, str(tmp_path))
    monkeypatch.delenv("CC", raising=False)
    first = native_kernel.build()
    assert first.parent == tmp_path / "native" and first.exists()
    built_at = first.stat().st_mtime_ns
    assert native_kernel.build() == first and first.stat().st_mtime_ns == built_at
    edited = tmp_path / "edited.c"
    edited.write_text(native_kernel.SOURCE.read_text() + "\n/* edited */\n")
    monkeypatch.setattr(native_kernel, "SOURCE", edited)
    assert native_kernel.build() != first  # another source: another library


@fault("`HIGHWAY_STUDY_STACK=fast`",
       "`HIGHWAY_STUDY_STACK=fast python -m highway_study` (a run, or a sweep with "
       "`hydra/launcher=population`)",
       "exit 2 before anything trains: `HIGHWAY_STUDY_STACK='fast' is not allowed: use one of "
       "auto, native, xla.`")
@pytest.mark.parametrize("launch", [(), ("-m", "seed=0,1", "hydra/launcher=population")],
                         ids=["run", "population sweep"])
def test_a_bad_stack_value_ends_the_command_in_one_sentence(run_cli, tmp_path, launch):
    result = run_cli(*launch, "data=synthetic", "depth=2", f"hydra.run.dir={tmp_path / 'run'}",
                     f"hydra.sweep.dir={tmp_path / 'sweep'}", env={STACK_ENV: "fast"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "HIGHWAY_STUDY_STACK='fast' is not allowed: use one of auto, native, xla." \
        in result.stderr
    assert not list((tmp_path / "sweep").rglob("summary.json"))  # nothing trained
