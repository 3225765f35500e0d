"""The fast highway stack (XLA loop, hand-written gradient) computes what the reference does.

Correctness only; timings live in docs/benchmark.md (`python -m highway_study.bench.benchmark`).
Tolerances (float32): outputs and gradients agree with the one-HighwayDense-per-layer
reference to rtol 1e-5 relative to the tensor's largest value up to depth 30; at depth 1000
with the reference and with a float64 NumPy loop to rtol 1e-4 of the tensor's largest value
(1000 layers of float32 rounding).
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from compose import compose_config
from highway_study.nn.highway import HighwayDense, HighwayStack
from highway_study.models import build_model
from highway_study.training import seed_everything
from highway_study.training.optim import make_loss, make_optimizer


def random_stack_weights(rng, depth, width, carry_bias):
    kernel = rng.normal(0, 0.4, (depth, width, 2 * width)).astype(np.float32)
    bias = np.concatenate(
        [rng.normal(0, 0.1, (depth, width)), np.full((depth, width), carry_bias)], axis=1
    ).astype(np.float32)
    return kernel, bias


def stack_with(kernel, bias, method="xla", streams=2):
    stack = HighwayStack(kernel.shape[0], method=method, streams=streams)
    stack.build((None, kernel.shape[1]))
    stack.set_weights([kernel, bias])
    return stack


def close(actual, expected, rtol):
    actual, expected = np.asarray(actual), np.asarray(expected)
    scale = float(np.abs(expected).max())
    assert scale > 0, "comparison against an all-zero tensor proves nothing"
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


def output_and_gradients(layers, variables, x, probe):
    """y and d(sum(y * probe))/d(x, variables) through `layers` applied in order."""
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = x
        for layer in layers:
            y = layer(y, training=True)
        loss = tf.reduce_sum(y * probe)
    return y, tape.gradient(loss, [x] + variables)


@pytest.mark.parametrize("depth, carry_bias, rtol", [
    (1, -1.0, 1e-5), (3, -1.0, 1e-5), (30, -1.0, 1e-5),
    # 1000 layers: a strong carry bias keeps the first layers' gradients alive, and 1000
    # layers of float32 rounding in two different op orders get a looser tolerance.
    (1000, -5.0, 1e-4),
])
def test_fast_stack_matches_layer_per_object_reference(depth, carry_bias, rtol):
    rng = np.random.default_rng(depth)
    width, batch = 6, 5
    kernel, bias = random_stack_weights(rng, depth, width, carry_bias=carry_bias)
    x = rng.normal(size=(batch, width)).astype(np.float32)
    probe = rng.normal(size=(batch, width)).astype(np.float32)

    reference = []
    for k, b in zip(kernel, bias):
        layer = HighwayDense()
        layer.build((None, width))
        layer.set_weights([k[:, :width], b[:width], k[:, width:], b[width:]])
        reference.append(layer)
    ref_vars = [v.value for layer in reference for v in layer.trainable_variables]
    y_ref, (dx_ref, *dw_ref) = output_and_gradients(reference, ref_vars, x, probe)

    stack = stack_with(kernel, bias)
    y, (dx, dkernel, dbias) = output_and_gradients(
        [stack], [stack.kernel.value, stack.bias.value], x, probe
    )
    close(y, y_ref, rtol)
    close(dx, dx_ref, rtol)
    # Reference variables come per layer as kernel_h, bias_h, kernel_t, bias_t.
    dk_h, db_h, dk_t, db_t = (np.stack(dw_ref[i::4]) for i in range(4))
    dkernel_ref = np.concatenate([dk_h, dk_t], axis=2)
    close(dkernel, dkernel_ref, rtol)
    close(dkernel[:10], dkernel_ref[:10], rtol)  # the first layers on their own scale
    close(dbias, np.concatenate([db_h, db_t], axis=1), rtol)


def numpy_stack(x, kernel, bias, probe):
    """Forward and hand-written backward of a ReLU highway stack in float64."""
    x, kernel, bias, probe = (a.astype(np.float64) for a in (x, kernel, bias, probe))
    width = x.shape[1]
    inputs, pres = [], []
    for k, b in zip(kernel, bias):
        pre = x @ k + b
        h, t = np.maximum(pre[:, :width], 0), 1 / (1 + np.exp(-pre[:, width:]))
        inputs.append(x)
        pres.append(pre)
        x = h * t + x * (1 - t)
    y, g = x, probe
    dkernel, dbias = np.zeros_like(kernel), np.zeros_like(bias)
    for i in reversed(range(len(kernel))):
        x, pre = inputs[i], pres[i]
        h, t = np.maximum(pre[:, :width], 0), 1 / (1 + np.exp(-pre[:, width:]))
        dpre = np.concatenate([g * t * (pre[:, :width] > 0), g * (h - x) * t * (1 - t)], axis=1)
        dkernel[i], dbias[i] = x.T @ dpre, dpre.sum(axis=0)
        g = g * (1 - t) + dpre @ kernel[i].T
    return y, g, dkernel, dbias


def test_fast_stack_matches_numpy_at_depth_1000():
    rng = np.random.default_rng(1000)
    depth, width, batch = 1000, 8, 3
    # A strong carry bias keeps the gradient alive through 1000 layers, so the first
    # layers' gradients are compared too, not just numbers that vanished to zero.
    kernel, bias = random_stack_weights(rng, depth, width, carry_bias=-5.0)
    x = rng.normal(size=(batch, width)).astype(np.float32)
    probe = rng.normal(size=(batch, width)).astype(np.float32)
    y_np, dx_np, dk_np, db_np = numpy_stack(x, kernel, bias, probe)
    assert np.abs(dk_np[0]).max() > 1e-3 * np.abs(dk_np[-1]).max()

    stack = stack_with(kernel, bias)
    y, (dx, dkernel, dbias) = output_and_gradients(
        [stack], [stack.kernel.value, stack.bias.value], x, probe
    )
    for actual, expected in ((y, y_np), (dx, dx_np), (dkernel, dk_np), (dbias, db_np)):
        close(actual, expected, 1e-4)
    close(dkernel[:10], dk_np[:10], 1e-4)  # the first layers on their own scale


def test_fast_and_autodiff_stack_agree_at_depth_1000():
    """TensorFlow's own gradient of the graph-mode scan is an independent check of the hand one."""
    rng = np.random.default_rng(7)
    kernel, bias = random_stack_weights(rng, 1000, 8, carry_bias=-5.0)
    x = rng.normal(size=(4, 8)).astype(np.float32)
    probe = rng.normal(size=(4, 8)).astype(np.float32)
    results = []
    for method in ("xla", "autodiff"):
        stack = stack_with(kernel, bias, method)
        results.append(output_and_gradients(
            [stack], [stack.kernel.value, stack.bias.value], x, probe))
    (y_fast, grads_fast), (y_auto, grads_auto) = results
    close(y_fast, y_auto, 1e-5)
    for fast, auto in zip(grads_fast, grads_auto):
        close(fast, auto, 1e-5)


def test_stack_gate_activity_is_each_layers_mean_gate():
    rng = np.random.default_rng(3)
    kernel, bias = random_stack_weights(rng, 12, 5, carry_bias=-2.0)
    x0 = rng.normal(size=(7, 5)).astype(np.float32)
    x, expected = x0.astype(np.float64), []
    for k, b in zip(kernel, bias):
        pre = x @ k + b
        h, t = np.maximum(pre[:, :5], 0), 1 / (1 + np.exp(-pre[:, 5:]))
        expected.append(t.mean())
        x = h * t + x * (1 - t)
    close(stack_with(kernel, bias).gate_activity(x0), expected, 1e-5)


@pytest.mark.parametrize("depth", [1, 2, 12])
def test_inference_path_equals_training_path_and_numpy(depth):
    """Depths 1 and 2 cover the loop reading the next layer's bias one step ahead."""
    rng = np.random.default_rng(5)
    kernel, bias = random_stack_weights(rng, depth, 5, carry_bias=-2.0)
    stack = stack_with(kernel, bias)
    x = rng.normal(size=(7, 5)).astype(np.float32)
    y_np = numpy_stack(x, kernel, bias, np.ones_like(x))[0]
    close(stack(x, training=False), y_np, 1e-5)
    close(stack(x, training=False), stack(x, training=True), 1e-6)


@pytest.mark.parametrize("batch", [1, 2, 7])
def test_streams_split_the_batch_without_changing_the_results(batch):
    """Batch 1 leaves a stream an empty slice; 7 rows split unevenly into 2 and 3 streams."""
    rng = np.random.default_rng(batch)
    kernel, bias = random_stack_weights(rng, 9, 5, carry_bias=-1.0)
    x = rng.normal(size=(batch, 5)).astype(np.float32)
    probe = rng.normal(size=(batch, 5)).astype(np.float32)
    results = {}
    for streams in (1, 2, 3):
        stack = stack_with(kernel, bias, streams=streams)
        y, grads = output_and_gradients(
            [stack], [stack.kernel.value, stack.bias.value], x, probe)
        results[streams] = [y, stack(x, training=False), *grads]
    for streams in (2, 3):
        for one_stream, split in zip(results[1], results[streams]):
            close(split, one_stream, 1e-5)


@pytest.mark.parametrize("inter_op, cores, expected", [(1, 8, 1), (0, 1, 1), (0, 2, 2),
                                                       (0, 16, 2), (4, 2, 2)])
def test_default_streams_follow_the_threads_tensorflow_may_use(monkeypatch, inter_op, cores,
                                                               expected):
    """0 inter-op threads means TensorFlow's default: one per core."""
    from highway_study.nn import fast_stack

    monkeypatch.setattr(tf.config.threading, "get_inter_op_parallelism_threads",
                        lambda: inter_op)
    monkeypatch.setattr(fast_stack.os, "cpu_count", lambda: cores)
    assert fast_stack.default_streams() == expected


def test_stack_options_are_checked_and_serialised():
    with pytest.raises(ValueError, match="method='fused' is not allowed"):
        HighwayStack(3, method="fused")
    with pytest.raises(ValueError, match=r"streams must be >= 1 or None \(auto\), got 0"):
        HighwayStack(3, streams=0)
    restored = HighwayStack.from_config(
        HighwayStack(3, method="autodiff", streams=3).get_config())
    assert (restored.method, restored.streams) == ("autodiff", 3)


def one_training_step(implementation, x, y):
    """Build the model as training does, with fixed weights, and take one SGD step."""
    cfg = compose_config("depth=4", "width=6", "optimizer=sgd", "optimizer.learning_rate=0.5",
                         f"model.implementation={implementation}")
    keras.backend.clear_session()
    seed_everything(0)  # also turns op determinism on, as every run does
    model = build_model(cfg, x.shape[1], 3)
    model.compile(optimizer=make_optimizer(cfg.optimizer), loss=make_loss("mean"))
    return model


def test_default_training_path_is_the_fast_stack_and_learns_like_the_reference():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(16, 9)).astype(np.float32)
    y = rng.integers(0, 3, size=16)
    fast = one_training_step("scan", x, y)
    stacks = [layer for layer in fast.layers if isinstance(layer, HighwayStack)]
    assert compose_config().model.implementation == "scan"
    assert len(stacks) == 1 and stacks[0].method == "xla" and stacks[0].streams is None

    reference = one_training_step("layers", x, y)
    # Same starting weights: copy the reference's per-layer weights into the stack.
    ref_weights = reference.get_weights()
    projection, per_layer, classifier = ref_weights[:2], ref_weights[2:-2], ref_weights[-2:]
    kernel = np.stack([np.concatenate([per_layer[i], per_layer[i + 2]], axis=1)
                       for i in range(0, len(per_layer), 4)])
    bias = np.stack([np.concatenate([per_layer[i + 1], per_layer[i + 3]])
                     for i in range(0, len(per_layer), 4)])
    fast.set_weights(projection + [kernel, bias] + classifier)

    loss_fast = fast.train_on_batch(x, y)
    loss_ref = reference.train_on_batch(x, y)
    np.testing.assert_allclose(loss_fast, loss_ref, rtol=1e-5)
    after = reference.get_weights()[2:-2]
    np.testing.assert_allclose(
        fast.get_weights()[2],
        np.stack([np.concatenate([after[i], after[i + 2]], axis=1)
                  for i in range(0, len(after), 4)]),
        rtol=1e-5, atol=1e-6,
    )
    np.testing.assert_allclose(fast.get_weights()[-2], reference.get_weights()[-2],
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("initializer, std", [("he_normal", np.sqrt(2 / 40)),
                                              ("glorot_normal", np.sqrt(2 / 80))])
def test_stack_draws_each_block_with_one_layers_variance(initializer, std):
    """The one-call initialisation must give every [w, w] block a single layer's fans."""
    stack = HighwayStack(200, kernel_initializer=initializer)
    stack.build((None, 40))
    kernel = stack.get_weights()[0]
    np.testing.assert_allclose(kernel[:, :, :40].std(), std, rtol=0.03)
    np.testing.assert_allclose(kernel[:, :, 40:].std(), std, rtol=0.03)
    assert kernel[0, :, :40].std() > 0.8 * std and not np.allclose(kernel[0], kernel[1])


def test_benchmark_flop_formula_counts_every_kernel_entry():
    from highway_study.bench.benchmark import CLASSES, FEATURES, flops_per_step

    cfg = compose_config("depth=5", "width=7")
    model = build_model(cfg, FEATURES, CLASSES)
    kernel_entries = sum(int(np.prod(w.shape)) for w in model.weights if "kernel" in w.name)
    # Each kernel entry costs one multiply-add per example forward, two more backward.
    assert flops_per_step(5, 7, 32) == 3 * 2 * 32 * kernel_entries


def test_benchmark_rejects_bad_options_in_one_sentence(capsys):
    from highway_study.bench.benchmark import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--depths", "20", "0"])
    assert "--depths holds 0: use integers >= 1." in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--variants", "fused"])
    assert "invalid choice: 'fused'" in capsys.readouterr().err

    from highway_study.bench.sweep import parse_args as parse_sweep_args

    with pytest.raises(SystemExit):
        parse_sweep_args(["--compare-op-threads", "1", "-2"])
    assert "--compare-op-threads holds -2: use 0" in capsys.readouterr().err
    assert parse_sweep_args(["--compare-op-threads", "0", "2"]).compare_op_threads == [0, 2]


def run_benchmark(tmp_path, *options):
    out = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, "-m", "highway_study.bench.benchmark", "--depths", "2", "--width", "6",
         "--batch-size", "8", "--steps", "3", "--windows", "2",
         "--variants", "reference", "scan", "--json", str(out), *options],
        capture_output=True, text=True, timeout=300,
    )
    return result, json.loads(out.read_text())["rows"]


def test_benchmark_times_every_variant_in_interleaved_windows(tmp_path):
    result, rows = run_benchmark(tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    reference, scan = rows
    assert [r["variant"] for r in rows] == ["reference", "scan"]
    for row in rows:
        assert len(row["window_steps_per_s"]) == 2 and row["steps_per_s"] > 0
        assert row["build_first_step_s"] > 0 and row["peak_rss_mb"] > 100
        assert f"| 2 | {row['variant']} |" in result.stdout
    assert scan["xla_effective"] and not reference["xla_effective"]
    assert scan["speedup_vs_reference"] == pytest.approx(
        scan["steps_per_s"] / reference["steps_per_s"])


def test_benchmark_reports_a_dead_cell_and_still_writes_the_results(tmp_path):
    result, rows = run_benchmark(tmp_path, "--cell-timeout", "0.5")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "2 cell(s) failed (reference at depth 2, scan at depth 2)" in result.stderr
    assert [row["error"] for row in rows] == ["timed out: killed after --cell-timeout 0.5 s"] * 2


def test_benchmark_json_on_stdout_is_json_alone(tmp_path):
    """`--json -` is for a pipe: stdout holds the JSON only, the table goes to stderr."""
    result = subprocess.run(
        [sys.executable, "-m", "highway_study.bench.benchmark", "--depths", "2", "--width", "6",
         "--variants", "scan", "--cell-timeout", "0.5", "--json", "-"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 1  # the cell was timed out, on purpose: fast
    rows = json.loads(result.stdout)["rows"]
    assert rows[0]["variant"] == "scan" and rows[0]["error"].startswith("timed out")
    assert "| depth | variant |" in result.stderr


def test_a_dead_cell_is_explained_by_its_error_not_by_a_log_line():
    from highway_study.bench.benchmark import failure_reason

    tf_logs = ("2026-11-27 03:10:11.123456: I tensorflow/core/util/port.cc:153] oneDNN custom "
               "operations are on.\nW0000 00:00:1764213011.1 12 cuda_platform.cc:52] failed call "
               "to cuInit\n")
    crash = tf_logs + ("Traceback (most recent call last):\n  File \"x.py\", line 1\n"
                       "MemoryError: cannot allocate 4 GiB\n" + tf_logs)
    assert failure_reason(crash, 1) == "MemoryError: cannot allocate 4 GiB"
    assert failure_reason(tf_logs + "cell: bad spec\n" + tf_logs, 2) == "cell: bad spec"
    assert failure_reason(tf_logs, -9) == "killed by signal 9"
    assert failure_reason("", 3) == "exited with status 3 without a message"


def test_stack_benchmark_times_each_streams_count(capsys):
    from highway_study.bench.stack import main as stack_benchmark

    assert stack_benchmark(["--depth", "3", "--width", "4", "--batch-size", "6",
                            "--streams", "1", "2"]) == 0
    out = capsys.readouterr().out
    assert "depth 3, width 4, batch 6, TensorFlow's default threads" in out
    assert "streams 1:" in out and "streams 2:" in out
    with pytest.raises(SystemExit):
        stack_benchmark(["--streams", "2", "0"])
    assert "--streams holds 0: use integers >= 1." in capsys.readouterr().err


def test_sweep_benchmark_measures_both_paths_and_estimates_the_protocol(tmp_path):
    """The sweep mode end to end on tiny cells: a row per depth, an estimate for each path."""
    out = tmp_path / "sweep.json"
    result = subprocess.run(
        [sys.executable, "-m", "highway_study.bench.sweep", "--depths", "3",
         "--compare-groups", "1", "--compare-op-threads", "0", "--members", "3", "--width", "6", "--steps", "2", "--windows", "1",
         "--protocol-steps", "100", "--json", str(out)],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| 3 |" in result.stdout and "Estimated wall time of the protocol" in result.stdout
    saved = json.loads(out.read_text())
    assert [row["depth"] for row in saved["rows"]] == [3]
    assert "population in 1 parts: member-steps/s" in result.stdout
    assert "population with all cores' threads per op: member-steps/s" in result.stdout
    assert saved["rows"][0]["groups_member_steps_per_s"]["1"] > 0
    assert saved["rows"][0]["op_threads_member_steps_per_s"]["0"] > 0
    assert "cores busy: runs / population" in result.stdout
    for row in saved["rows"]:
        assert row["new_member_steps_per_s"] == pytest.approx(3 * row["new_steps_per_s"])
        assert row["old_member_steps_per_s"] > 0
        # CPU over wall seconds (the tiny windows here are too short to bound it tightly)
        assert row["new_cores_busy"] >= 0 and row["old_cores_busy"] >= 0
    assert saved["estimate"]["old_s"] > 0 and saved["estimate"]["new_s"] > 0
    # the arithmetic limit, measured in the same run, and each column against it
    assert len(saved["meta"]["matmul_gflops"]) == 2 and min(saved["meta"]["matmul_gflops"]) > 0
    assert "share of the limit" in result.stdout and "(the arithmetic limit)" in result.stdout
    assert "CPU: " in result.stdout and saved["meta"]["vectors"]
    row = saved["rows"][0]
    assert row["new_gflops"] == pytest.approx(
        row["new_member_steps_per_s"] * (12 * 50 * 36 * 3 + 6 * 50 * 6 * 794) / 1e9)
    assert "x the limit" in result.stdout.split("(the arithmetic limit)")[1]


def test_the_protocols_matmuls_are_about_310_tflop():
    """210 runs x 5,000 steps, batch 50, width 50, depths 1 to 1000: the issue's ~310 TFLOP
    (12 B W^2 per highway layer and step, forward and backward, plus the layers in and out)."""
    from highway_study.bench import limit
    from highway_study.bench.sweep import PROTOCOL_DEPTHS

    total = limit.protocol_flops(PROTOCOL_DEPTHS, 21, 5000, 50, 50)
    assert total == pytest.approx(21 * 5000 * (1.5e6 * 1888 + 10 * 6 * 50 * 50 * 794))
    assert 305e12 < total < 315e12


def test_the_sweep_table_keeps_its_columns_where_a_depth_failed():
    """A failed depth's row holds its error and empty cells up to the table's last column,
    the limit's two included, so the table still reads as one."""
    from highway_study.bench.sweep import markdown_table

    done = {"depth": 10, "members": 21, "old_member_steps_per_s": 700.0,
            "new_member_steps_per_s": 1400.0, "speedup": 2.0, "old_build_first_step_s": 1.0,
            "new_build_first_step_s": 2.0, "old_cores_busy": 2.0, "new_cores_busy": 1.5,
            "old_gflops": 19.0, "new_gflops": 38.0, "stack_member_steps_per_s": {"xla": 1300.0}}
    failed = {"depth": 1000, "members": 21, "error": "out of memory"}
    lines = markdown_table([done, failed], limit_gflops=190.0).splitlines()
    assert len({line.count("|") for line in lines}) == 1
    assert lines[0].count("|") == 10  # 9 columns: 6, one compared stack, the limit's 2
    assert lines[2].startswith("| 10 | 700 | 1400 | 2.00x |")
    assert lines[2].endswith("| 1300 | 19.0 / 38.0 | 10% / 20% |")
    assert lines[3].startswith("| 1000 | out of memory |")
    assert "(190 GFLOP/s)" in lines[0]


@pytest.mark.parametrize("cpuinfo, expected", [
    ("model name\t: AMD EPYC 9R14\nflags\t\t: fpu sse2 avx avx2 fma\n",
     ("AMD EPYC 9R14", "AVX2 (256 bits)")),
    ("model name\t: Intel Xeon\nflags\t\t: sse2 avx avx2 avx512f avx512bw\n",
     ("Intel Xeon", "AVX512F (512 bits)")),
    ("processor\t: 0\nFeatures\t: fp asimd evtstrm aes\nCPU implementer\t: 0x41\n",
     ("unknown CPU", "ASIMD (128 bits)")),
    ("", ("unknown CPU", "no vector extension named")),
])
def test_the_cpu_and_its_widest_vectors_are_read_from_cpuinfo(cpuinfo, expected):
    from highway_study.bench import limit

    assert limit.describe_cpu(cpuinfo) == expected


def test_the_matmul_rate_is_a_rate():
    from highway_study.bench import limit

    assert limit.matmul_rate(size=128, repeats=2) > 1e6  # FLOP/s: any CPU does 1 MFLOP/s


def test_cores_busy_is_cpu_time_over_wall_time_of_a_window():
    """A window that computes keeps about one core busy; one that sleeps keeps none. Measured
    in a fresh process: in a test worker, threads of earlier tests (OpenMP teams that spin a
    while after the kernel's calls) add their CPU time to the process's."""
    script = """
import json, time
from highway_study.bench.cell import timed_window

class Spinning:  # uses 0.3 s of CPU, however long the other test worker makes it wait
    def window(self):
        end = time.process_time() + 0.3
        while time.process_time() < end:
            pass
        return 1.0

class Sleeping:
    def window(self):
        time.sleep(0.3)
        return 2.0

print(json.dumps([timed_window(Spinning()), timed_window(Sleeping())]))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    spinning, sleeping = json.loads(done.stdout)
    assert spinning["steps_per_s"] == 1.0 and sleeping["steps_per_s"] == 2.0
    # one thread: at most one core (+ clock ticks); at least a third of one while the other
    # test worker keeps both cores busy
    assert 0.3 < spinning["cores_busy"] <= 1.2
    assert sleeping["cores_busy"] < 0.2

def test_population_parts_times_every_part_of_a_deep_step(capsys):
    from highway_study.bench import population_parts

    assert population_parts.main(["--depth", "3", "--members", "2", "--segments", "0", "2"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines()
            if line.startswith("| ") and not line.startswith("| part")]
    assert len(rows) == 11  # six parts of the step, three updates, two whole passes
    for row in rows:
        ms, gflops = (float(cell) for cell in row.strip("|").split("|")[1:])
        assert ms > 0 and gflops > 0
    with pytest.raises(SystemExit):
        population_parts.main(["--depth", "0"])


@pytest.mark.parametrize("members, streams", [(None, 2), (3, 1)])
def test_recomputed_segments_give_the_same_outputs_and_gradients(members, streams):
    """Segments of 4 layers (the last one shorter) against keeping every layer: the same
    forward output and gradients, for a run alone (two streams) and a population."""
    from highway_study.nn import fast_stack

    rng = np.random.default_rng(3)
    depth, width, batch = 10, 6, 8
    lead = () if members is None else (members,)
    x = tf.constant(rng.normal(size=lead + (batch, width)).astype("f4"))
    kernel = tf.constant(rng.normal(0, 0.4, (depth,) + lead + (width, 2 * width)).astype("f4"))
    bias = tf.constant(rng.normal(-1, 0.5, (depth,) + lead + (1,) * len(lead)
                                  + (2 * width,)).astype("f4"))

    def run(segment):
        with tf.GradientTape() as tape:
            tape.watch([x, kernel, bias])
            y = fast_stack.highway_stack(x, kernel, bias, tf.nn.relu, streams=streams,
                                         segment=segment)
            loss = tf.reduce_sum(tf.sin(y))
        return [y.numpy()] + [g.numpy() for g in tape.gradient(loss, [x, kernel, bias])]

    for whole, segmented in zip(run(0), run(4)):
        np.testing.assert_allclose(segmented, whole, rtol=1e-6, atol=1e-7)
    assert fast_stack._segments(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert fast_stack.default_segment(fast_stack.SEGMENT_FROM_DEPTH - 1) == 0
    assert fast_stack.default_segment(1000) == fast_stack.SEGMENT_LAYERS


def test_deep_populations_are_cut_into_parts_of_about_two_members(monkeypatch):
    from highway_study.nn import fast_stack
    from highway_study.training import batched

    monkeypatch.setattr(fast_stack, "default_streams", lambda: 2)
    assert batched.default_groups(21, 20) == 2  # shallow: one part per core
    assert batched.default_groups(21, 100) == 11 and batched.default_groups(21, 1000) == 11
    assert batched.default_groups(3, 1000) == 2  # never fewer parts than cores


def _kernel_or_skip():
    from highway_study.nn import native_kernel
    try:
        return native_kernel.load()
    except native_kernel.NativeUnavailable as error:
        pytest.skip(f"the compiled kernel is unavailable here: {error}")


def test_the_kernel_bench_times_versions_side_by_side_and_tells_their_results_apart(
        tmp_path, capsys):
    """Another version of the kernel's source is built as the project's own, timed beside
    it, and said to give the same bits or not."""
    from highway_study.bench import kernel as kernel_bench
    from highway_study.nn import native_kernel
    _kernel_or_skip()
    source = native_kernel.SOURCE.read_text()
    same = tmp_path / "same.c"
    same.write_text("/* only a comment differs */\n" + source)
    changed_line = "dxi[j] = d * (1.0f - t);"
    assert changed_line in source
    changed = tmp_path / "changed.c"
    changed.write_text(source.replace(changed_line, "dxi[j] = d * (1.0f - t) * 0.5f;"))
    kernel_bench.main(["--depth", "3", "--members", "2", "--threads", "1", "--repeats", "1",
                       "--compare", str(same), str(changed)])
    rows = {line.split("|")[1].strip(): line for line in capsys.readouterr().out.splitlines()
            if line.startswith("| ") and "source" not in line}
    assert rows["this checkout"].endswith("| same bits |")
    assert rows[str(same)].endswith("| same bits |")
    assert "differs: up to" in rows[str(changed)]
    for row in rows.values():  # every pass timed, a rate computed
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert all(float(cell.split()[0]) > 0 for cell in cells[1:5])


@pytest.mark.parametrize("argv, said", [
    (["--compare", "no/such/kernel.c"], "--compare no/such/kernel.c: no such file"),
    (["--depth", "0"], "--depth=0 is not allowed"),
])
def test_the_kernel_bench_refuses_bad_input_in_one_sentence(argv, said, capsys):
    from highway_study.bench import kernel as kernel_bench
    with pytest.raises(SystemExit):
        kernel_bench.main(argv)
    assert said in capsys.readouterr().err
