"""How fast a deep highway MLP builds and trains, per implementation: one table, one command.

    python -m highway_study.bench.benchmark [--depths 20 100 1000] [--variants ...]
        [--json out.json]

Every (variant, depth) cell runs in its own process (`highway_study.bench.cell`), so
that peak memory is that cell's own and one variant's compiled functions or thread pools
cannot help or hurt another. Each cell builds the model exactly as training does and fits
random MNIST-shaped data. The cells of one depth are built one after another, then timed
in interleaved windows (reference, A, B, reference, A, B, ...): the ratios then compare
windows taken seconds apart, not minutes, on a machine whose speed drifts.

Columns: build + first step (seconds from building the model to the end of the first
training step: graph construction, tracing, XLA compilation, one step); steady steps/s (the
median over `--windows` timed windows of `--steps` steps each, after two warm-up steps);
GFLOP/s achieved (matmul FLOPs below, divided by the steady step time); peak RSS of the
cell's process; and steps/s as a ratio to the reference at the same depth.

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
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from analysis.markdown import table
from highway_study.bench.cell import CLASSES, FEATURES, VARIANTS

DEFAULT_VARIANTS = ("reference", "scan_autodiff", "scan_autodiff_jit", "scan_1stream", "scan")


def flops_per_step(depth: int, width: int, batch: int) -> int:
    forward = 2 * batch * (FEATURES * width + depth * width * 2 * width + width * CLASSES)
    return 3 * forward


# -- cells, each in its own process ------------------------------------------------------


class CellProcess:
    """A running benchmark_cell, spoken to one JSON line at a time."""

    def __init__(self, variant: str, depth: int, args, tree: str | None = None, **extra):
        """`tree`: another checkout of the project whose code the cell runs (the cell starts
        in that folder, which `python -m` puts first on sys.path), to time two versions in
        the same windows."""
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        if args.device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = "-1"
        spec = dict(depth=depth, width=args.width, batch=args.batch_size, steps=args.steps,
                    **extra)
        if not extra.get("population"):
            spec["variant"] = variant
        self.row = {"variant": variant, "depth": depth, "width": args.width,
                    "batch_size": args.batch_size}
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "highway_study.bench.cell", json.dumps(spec)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True,
            env=env, cwd=tree,
        )
        # A cell that hangs is killed after --cell-timeout seconds; its row then says so.
        self.cell_timeout = args.cell_timeout
        self.timed_out = False
        self.watchdog = threading.Timer(args.cell_timeout, self.time_out)
        self.watchdog.start()
        self.rates: list[float] = []
        self.cores_busy: list[float] = []
        self.ask(None, lambda reply: self.row.update(reply))

    @property
    def alive(self) -> bool:
        return "error" not in self.row

    def ask(self, command: str | None, on_reply) -> None:
        """Send `command` (None: just listen), hand the next JSON reply to on_reply."""
        if command is not None:
            self.send(command)
        self.receive(on_reply)

    def send(self, command: str) -> None:
        """Send `command` without waiting (cells then work side by side)."""
        if not self.alive:
            return
        try:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.fail()

    def receive(self, on_reply) -> None:
        if not self.alive:
            return
        try:
            for line in self.proc.stdout:
                if line.startswith("{"):
                    on_reply(json.loads(line))
                    return
        except (BrokenPipeError, OSError):
            pass
        self.fail()

    def time_out(self) -> None:
        self.timed_out = True
        self.proc.kill()

    def fail(self) -> None:
        self.proc.wait()
        self.stderr.seek(0)
        if self.timed_out:
            error = f"timed out: killed after --cell-timeout {self.cell_timeout:g} s"
        else:
            error = failure_reason(self.stderr.read(), self.proc.returncode)
        self.row = {**self.row, "error": error}
        self.close()

    def window(self) -> None:
        self.ask("window", self.record_window)

    def record_window(self, reply: dict) -> None:
        self.rates.append(reply["steps_per_s"])
        self.cores_busy.append(reply["cores_busy"])

    def finish(self, flops: int) -> dict:
        self.ask("done", lambda reply: self.row.update(reply))
        if self.alive:
            self.proc.wait()
            rate = statistics.median(self.rates)
            self.row.update(steps_per_s=rate, window_steps_per_s=self.rates,
                            cores_busy=statistics.median(self.cores_busy),
                            gflop_per_s=flops * rate / 1e9)
        self.close()
        return self.row

    def close(self) -> None:
        self.watchdog.cancel()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


# TensorFlow's, absl's and XLA's own log lines ("2026-... I tensorflow/...", "W0000 00:00:...",
# "WARNING: All log messages before absl::InitializeLog() ..."): never a cell's reason.
_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d[ T]\d|[IWEF]\d{4} |WARNING: All log messages|"
                       r"WARNING:absl:|I0000|W0000|E0000)")
_ERROR_LINE = re.compile(r"^[\w.]*(Error|Exception|Exit|Interrupt)\b")


def failure_reason(stderr: str, returncode: int | None) -> str:
    """Why a cell died, from its stderr: the last exception line, else the last line that is
    not a library's log line, else its exit status."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if _ERROR_LINE.match(line):
            return line
    for line in reversed(lines):
        if not _LOG_LINE.match(line):
            return line
    if returncode is not None and returncode < 0:
        return f"killed by signal {-returncode}"
    return f"exited with status {returncode} without a message"


def measure_depth(depth: int, variants: list[str], args) -> list[dict]:
    """Build each variant's cell in turn, then time them in interleaved windows."""
    cells = []
    for variant in variants:
        cell = CellProcess(variant, depth, args)
        cells.append(cell)
        print(f"# {variant} depth {depth}: "
              + (cell.row.get("error") or f"built, first step after "
                                          f"{cell.row['build_first_step_s']:.2f} s"),
              file=sys.stderr, flush=True)
    for _ in range(args.windows):
        for cell in cells:
            cell.window()
    rows = [cell.finish(flops_per_step(depth, args.width, args.batch_size)) for cell in cells]
    for row in rows:
        print(f"# {row['variant']} depth {depth}: "
              + (row.get("error") or f"{row['steps_per_s']:.1f} steps/s"),
              file=sys.stderr, flush=True)
    return rows


def add_ratios(rows: list[dict]) -> None:
    reference = {r["depth"]: r for r in rows if r["variant"] == "reference" and "error" not in r}
    for row in rows:
        ref = reference.get(row["depth"])
        if ref and "error" not in row and "skipped" not in row:
            row["speedup_vs_reference"] = row["steps_per_s"] / ref["steps_per_s"]
            row["build_speedup_vs_reference"] = ref["build_first_step_s"] / row["build_first_step_s"]


def markdown_table(rows: list[dict]) -> str:
    header = ["depth", "variant", "build + first step (s)", "steady steps/s", "GFLOP/s",
              "peak RSS (MB)", "steps/s vs reference"]
    body = []
    for r in rows:
        if "error" in r or "skipped" in r:
            body.append([r["depth"], r["variant"], r.get("error") or r["skipped"], "", "", "",
                         ""])
            continue
        ratio = r.get("speedup_vs_reference")
        body.append([r["depth"], r["variant"], f"{r['build_first_step_s']:.2f}",
                     f"{r['steps_per_s']:.1f}", f"{r['gflop_per_s']:.1f}",
                     f"{r['peak_rss_mb']:.0f}", "" if ratio is None else f"{ratio:.2f}x"])
    return table(header, body).rstrip("\n")


def require_positive(parser, args, numbers: list[str], lists: list[str]) -> None:
    """End with argparse's one-sentence error if an option (or a list item) is below 1."""
    for key in numbers:
        if getattr(args, key) < 1:
            parser.error(f"--{key.replace('_', '-')}={getattr(args, key)} is not allowed: "
                         "use an integer >= 1.")
    for key in lists:
        bad = [value for value in getattr(args, key) if value < 1]
        if bad:
            parser.error(f"--{key.replace('_', '-')} holds {bad[0]}: use integers >= 1.")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m highway_study.bench.benchmark",
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
                        help="seconds one cell may live (build and all its windows)")
    parser.add_argument("--json", metavar="PATH", help="also write all results as JSON ('-': stdout, the table then "
                             "goes to stderr)")
    args = parser.parse_args(argv)
    require_positive(parser, args, ["width", "batch_size", "steps", "windows"], ["depths"])
    if args.json and args.json != "-":
        folder = os.path.dirname(os.path.abspath(args.json))
        if not os.path.isdir(folder):  # checked now, not after minutes of measuring
            parser.error(f"--json {args.json}: folder {folder} does not exist; "
                         "create it or use another path.")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
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
        variants = []
        for variant in args.variants:
            if (variant == "reference" and args.reference_max_depth is not None
                    and depth > args.reference_max_depth):
                rows.append({"variant": variant, "depth": depth,
                             "skipped": f"skipped (--reference-max-depth "
                                        f"{args.reference_max_depth})"})
            else:
                variants.append(variant)
        rows += measure_depth(depth, variants, args)
    add_ratios(rows)
    meta = {
        "command": "python -m highway_study.bench.benchmark " + " ".join(argv or sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "python": platform.python_version(), "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(), "wall_s": time.time() - started,
        "flops_per_step": "3 * 2 * B * (784*w + depth*w*2w + w*10)",
        "variants": {name: VARIANTS[name][3] for name in args.variants},
    }
    # With --json -, stdout carries the JSON alone (for a pipe); the table goes to stderr.
    table_stream = sys.stderr if args.json == "-" else sys.stdout
    print(markdown_table(rows), file=table_stream)
    print(f"\nload average (1/5/15 min) before {load_before}, after {meta['load_avg_after']}; "
          f"{meta['wall_s']:.0f} s", file=table_stream)
    if args.json:
        text = json.dumps({"meta": meta, "rows": rows}, indent=2)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as out:
                out.write(text + "\n")
    failed = [f"{r['variant']} at depth {r['depth']}" for r in rows if "error" in r]
    if failed:
        print(f"{len(failed)} cell(s) failed ({', '.join(failed)}); their error is in the "
              "table.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
