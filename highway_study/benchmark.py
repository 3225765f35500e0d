"""How fast a deep highway MLP builds and trains, per implementation: one table, one command.

    python -m highway_study.benchmark [--depths 20 100 1000] [--variants ...] [--json out.json]

Every (variant, depth) cell runs in a fresh subprocess, so that peak memory is that cell's
own and one variant's compiled functions or thread pools cannot help or hurt another. Each
cell builds the model exactly as training does (`models.build_model`, the optimizer, loss
and metrics of `train.py`, `train.seed_everything` with op determinism on, `train.to_dataset`)
and fits random MNIST-shaped data (784 features, 10 classes).

Columns: build + first step (seconds from building the model to the end of the first
training step: graph construction, tracing, XLA compilation, one step); steady steps/s (the
median over `--windows` timed windows of `--steps` steps each, after two warm-up steps);
GFLOP/s achieved (matmul FLOPs below, divided by the steady step time); peak RSS of the
subprocess; and steps/s as a ratio to the reference at the same depth.

FLOPs per training step, counting matmuls only (elementwise ops are < 2% here):
    3 * 2 * B * (F * w + depth * w * 2w + w * C)
the forward pass (input projection F->w, each highway layer's H|T matmul w->2w, classifier
w->C) plus a backward pass of twice its FLOPs. B batch, F=784, w width, C=10.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

FEATURES, CLASSES = 784, 10

# name -> (config overrides, compile() arguments, op determinism, what it is)
VARIANTS = {
    "reference": ({"model.implementation": "layers"}, {}, True,
                  "one HighwayDense per layer, default compile (the model a user writes first)"),
    "scan_autodiff": ({"model.implementation": "scan_autodiff"}, {}, True,
                      "stacked weights, tf.foldl, TensorFlow autodiff, no XLA"),
    "scan_autodiff_jit": ({"model.implementation": "scan_autodiff"}, {"jit_compile": True}, False,
                          "stacked weights, tf.foldl, whole train step compiled by XLA "
                          "(needs op determinism off: Keras drops jit_compile otherwise)"),
    "scan": ({"model.implementation": "scan"}, {}, True,
             "the default: XLA-compiled loops with a hand-written gradient (fast_stack.py), "
             "the batch cut into model.streams=2 slices run side by side"),
    "scan_1stream": ({"model.implementation": "scan", "model.streams": 1}, {}, True,
                     "the default stack with model.streams=1: one XLA loop for the whole batch"),
    "scan_jit": ({"model.implementation": "scan"}, {"jit_compile": True}, False,
                 "the default stack inside a train step compiled whole by XLA "
                 "(op determinism off, as Keras requires for jit_compile)"),
    "scan_spe10": ({"model.implementation": "scan"}, {"steps_per_execution": 10}, True,
                   "the default plus steps_per_execution=10"),
}
DEFAULT_VARIANTS = ("reference", "scan_autodiff", "scan_autodiff_jit", "scan_1stream", "scan")


def flops_per_step(depth: int, width: int, batch: int) -> int:
    forward = 2 * batch * (FEATURES * width + depth * width * 2 * width + width * CLASSES)
    return 3 * forward


# -- one cell, in its own process -----------------------------------------------------


def measure(variant: str, depth: int, width: int, batch: int, steps: int, windows: int) -> dict:
    """Build, compile and fit one model; return its timings (runs inside the subprocess)."""
    start = time.perf_counter()
    import keras
    import numpy as np
    import tensorflow as tf
    from omegaconf import OmegaConf

    from highway_study.config import Config
    from highway_study.models import build_model
    from highway_study.train import make_loss, make_optimizer, seed_everything, to_dataset

    overrides, compile_args, determinism, _ = VARIANTS[variant]
    cfg = OmegaConf.structured(Config)
    cfg.model.name = "highway_fc"
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value)
    cfg.data.name, cfg.optimizer.name = "synthetic", "sgd"
    cfg.depth, cfg.width, cfg.batch_size = depth, width, batch
    if determinism:
        seed_everything(cfg.seed)
    else:
        keras.utils.set_random_seed(cfg.seed)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8 * batch, FEATURES)).astype(np.float32)
    y = rng.integers(0, CLASSES, size=8 * batch)
    dataset = to_dataset(x, y, batch).repeat()
    imported = time.perf_counter()

    model = build_model(cfg, FEATURES, CLASSES)
    model.compile(
        optimizer=make_optimizer(cfg.optimizer), loss=make_loss(cfg.loss_reduction),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                 keras.metrics.SparseCategoricalCrossentropy(from_logits=True, name="xent")],
        **compile_args,
    )
    timer = step_timer_class()()  # made here: the parent process never imports Keras
    per_execution = compile_args.get("steps_per_execution", 1)
    warmup = 2 * per_execution
    total = warmup + steps * windows
    total += -total % per_execution
    model.fit(dataset, epochs=1, steps_per_epoch=total, callbacks=[timer], verbose=0)

    marks = timer.marks  # (steps done, time) after each execution
    first = marks[0][1] - imported
    rates = []
    begin = next(i for i, (done, _) in enumerate(marks) if done >= warmup)
    for _ in range(windows):
        end = next((i for i in range(begin, len(marks)) if marks[i][0] - marks[begin][0] >= steps),
                   None)
        if end is None:
            break
        rates.append((marks[end][0] - marks[begin][0]) / (marks[end][1] - marks[begin][1]))
        begin = end
    rate = statistics.median(rates)
    return {
        "variant": variant, "depth": depth, "width": width, "batch_size": batch,
        "build_first_step_s": first, "steps_per_s": rate, "window_steps_per_s": rates,
        "gflop_per_s": flops_per_step(depth, width, batch) * rate / 1e9,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "import_s": imported - start, "devices": [d.name for d in tf.config.get_visible_devices()],
        "xla_effective": bool(model.jit_compile) or cfg.model.implementation == "scan",
    }


def step_timer_class():
    import keras

    class StepTimer(keras.callbacks.Callback):
        """Time at the end of every execution, with the number of steps done so far."""

        def __init__(self):
            super().__init__()
            self.marks: list[tuple[int, float]] = []

        def on_train_batch_end(self, batch, logs=None):
            float((logs or {}).get("loss", 0.0))  # wait for the step, as RunRecorder does
            self.marks.append((batch + 1, time.perf_counter()))

    return StepTimer


# -- the table -------------------------------------------------------------------------


def run_cell(variant, depth, args) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = "-1"
    spec = dict(variant=variant, depth=depth, width=args.width, batch=args.batch_size,
                steps=args.steps, windows=args.windows)
    proc = subprocess.run(
        [sys.executable, "-m", "highway_study.benchmark", "--cell", json.dumps(spec)],
        capture_output=True, text=True, env=env, timeout=args.cell_timeout,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"variant": variant, "depth": depth, "error": tail}
    return json.loads(lines[-1])


def add_ratios(rows: list[dict]) -> None:
    reference = {r["depth"]: r for r in rows if r["variant"] == "reference" and "error" not in r}
    for row in rows:
        ref = reference.get(row["depth"])
        if ref and "error" not in row and "skipped" not in row:
            row["speedup_vs_reference"] = row["steps_per_s"] / ref["steps_per_s"]
            row["build_speedup_vs_reference"] = ref["build_first_step_s"] / row["build_first_step_s"]


def markdown_table(rows: list[dict]) -> str:
    head = ("| depth | variant | build + first step (s) | steady steps/s | GFLOP/s "
            "| peak RSS (MB) | steps/s vs reference |\n|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        if "error" in r or "skipped" in r:
            why = r.get("error") or r["skipped"]
            lines.append(f"| {r['depth']} | {r['variant']} | {why} | | | | |")
            continue
        ratio = r.get("speedup_vs_reference")
        lines.append(
            f"| {r['depth']} | {r['variant']} | {r['build_first_step_s']:.2f} "
            f"| {r['steps_per_s']:.1f} | {r['gflop_per_s']:.1f} | {r['peak_rss_mb']:.0f} "
            f"| {'' if ratio is None else f'{ratio:.2f}x'} |"
        )
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m highway_study.benchmark",
        description="Build and training-step speed of highway MLP implementations.")
    parser.add_argument("--depths", type=int, nargs="+", default=[20, 100, 1000])
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS),
                        choices=sorted(VARIANTS), metavar="VARIANT",
                        help=f"any of: {', '.join(VARIANTS)} (default: "
                             f"{' '.join(DEFAULT_VARIANTS)})")
    parser.add_argument("--width", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20, help="steps per timed window")
    parser.add_argument("--windows", type=int, default=5, help="timed windows (median)")
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--reference-max-depth", type=int, default=None,
                        help="skip the reference above this depth (it builds for minutes)")
    parser.add_argument("--cell-timeout", type=float, default=1800,
                        help="seconds one cell may take")
    parser.add_argument("--json", metavar="PATH", help="also write all results as JSON ('-': stdout)")
    parser.add_argument("--cell", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for key in ("width", "batch_size", "steps", "windows"):
        if getattr(args, key) < 1:
            parser.error(f"--{key.replace('_', '-')}={getattr(args, key)} is not allowed: "
                         "use an integer >= 1.")
    bad = [d for d in args.depths if d < 1]
    if bad:
        parser.error(f"--depths holds {bad[0]}: use integers >= 1.")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.cell:
        print(json.dumps(measure(**json.loads(args.cell))), flush=True)
        return 0
    if args.device == "gpu":
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            print("--device gpu was asked for, but TensorFlow sees no GPU on this machine: "
                  "use --device cpu.", file=sys.stderr)
            return 2
    load_before = os.getloadavg()
    started = time.time()
    rows = []
    for depth in args.depths:
        for variant in args.variants:
            if (variant == "reference" and args.reference_max_depth is not None
                    and depth > args.reference_max_depth):
                rows.append({"variant": variant, "depth": depth,
                             "skipped": f"skipped (--reference-max-depth "
                                        f"{args.reference_max_depth})"})
                continue
            row = run_cell(variant, depth, args)
            rows.append(row)
            print(f"# {variant} depth {depth}: "
                  + (row.get("error") or f"{row['steps_per_s']:.1f} steps/s"),
                  file=sys.stderr, flush=True)
    add_ratios(rows)
    meta = {
        "command": "python -m highway_study.benchmark " + " ".join(argv or sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "python": platform.python_version(), "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(), "wall_s": time.time() - started,
        "flops_per_step": "3 * 2 * B * (784*w + depth*w*2w + w*10)",
        "variants": {name: VARIANTS[name][3] for name in args.variants},
    }
    print(markdown_table(rows))
    print(f"\nload average (1/5/15 min) before {load_before}, after {meta['load_avg_after']}; "
          f"{meta['wall_s']:.0f} s")
    if args.json:
        text = json.dumps({"meta": meta, "rows": rows}, indent=2)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as out:
                out.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
