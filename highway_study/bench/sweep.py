"""How long the blog's full protocol takes: one run per process (2 joblib jobs) or populations.

    python -m highway_study.bench.sweep [--depths 1 2 5 ... 1000] [--members 21]

For each depth of the protocol (experiment=blog_depth_bias: 7 carry biases x 3 seeds = 21
runs per depth, 5,000 steps of batch 50, width 50), side by side in one run:
- one run per process: two processes, each training one net (the engine's population of
  one) with one TensorFlow thread (what `hydra/launcher=joblib hydra.launcher.n_jobs=2`
  gives each job on 2 cores), timed in the same windows, so their member-steps/s add up
  (`--compare-fit` adds the same with Keras fit, the run alone before the one engine);
- the population path: one process training all `--members` nets of that depth at once
  (`hydra/launcher=population`).
Windows of the two paths alternate, so a machine whose speed drifts slows both alike. "Cores
busy" is CPU seconds over wall seconds in a window (the two jobs' summed): below the core
count, a path leaves cores idle; at it, only faster arithmetic per core helps. The
estimate of the protocol's wall time adds, per run (old) or per population (new), the
measured build + first step to steps / rate; it leaves out loading the data and the
per-epoch evaluations, which the real run (docs/benchmark.md) includes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

from analysis.markdown import table
from highway_study.bench import limit
from highway_study.bench.benchmark import CellProcess, require_positive

PROTOCOL_DEPTHS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]


def measure_depth(depth: int, args) -> dict:
    """Member-steps/s and build time of both paths at one depth."""
    jobs = [CellProcess("engine", depth, args, threads=1, population=True, members=1)
            for _ in range(2)]
    # The run alone as it trained before the one engine (Keras fit), in the same windows.
    fits = [CellProcess("scan", depth, args, threads=1) for _ in range(2 * args.compare_fit)]
    population = CellProcess("population", depth, args, population=True,
                             members=args.members)
    # The same population cut into other numbers of parts, or with other threads per op,
    # timed in the same windows.
    others = [CellProcess("population", depth, args, population=True, members=args.members,
                          groups=count) for count in args.compare_groups]
    others += [CellProcess("population", depth, args, population=True, members=args.members,
                           op_threads=count) for count in args.compare_op_threads]
    others += [CellProcess("population", depth, args, population=True, members=args.members,
                           stack=name) for name in args.compare_stack]
    others += [CellProcess("population", depth, args, population=True, members=args.members,
                           tree=tree) for tree in args.compare_tree]
    cells = jobs + [population] + others
    for _ in range(args.windows):
        for pair in (jobs, fits):
            for job in pair:  # the two jobs work at the same time, as joblib's would
                job.send("window")
            for job in pair:
                job.receive(job.record_window)
        for cell in [population] + others:
            cell.window()
    rows = [cell.finish(0) for cell in cells]
    fit_rows = [cell.finish(0) for cell in fits]
    rows += [row for row in fit_rows if "error" in row]
    failed = [row["error"] for row in rows if "error" in row]
    result = {"depth": depth, "members": args.members}
    if failed:
        return {**result, "error": failed[0]}
    per_job = [row["steps_per_s"] for row in rows[:2]]
    compared = rows[3:]
    result.update(
        old_member_steps_per_s=sum(per_job),
        old_steps_per_s_per_job=statistics.mean(per_job),
        old_build_first_step_s=statistics.mean(r["build_first_step_s"] for r in rows[:2]),
        new_member_steps_per_s=rows[2]["steps_per_s"] * args.members,
        new_steps_per_s=rows[2]["steps_per_s"],
        new_build_first_step_s=rows[2]["build_first_step_s"],
        new_peak_rss_mb=rows[2]["peak_rss_mb"],
        old_cores_busy=sum(row["cores_busy"] for row in rows[:2]),
        new_cores_busy=rows[2]["cores_busy"],
        groups_member_steps_per_s={
            str(count): (row.get("steps_per_s") or 0) * args.members
            for count, row in zip(args.compare_groups, compared)},
        op_threads_member_steps_per_s={
            str(count): (row.get("steps_per_s") or 0) * args.members
            for count, row in zip(args.compare_op_threads, compared[len(args.compare_groups):])},
        stack_member_steps_per_s={
            name: (row.get("steps_per_s") or 0) * args.members
            for name, row in zip(args.compare_stack, compared[len(args.compare_groups)
                                                              + len(args.compare_op_threads):])},
        new_stack=rows[2].get("stack"),
        tree_member_steps_per_s={
            tree: (row.get("steps_per_s") or 0) * args.members
            for tree, row in zip(args.compare_tree, compared[len(args.compare_groups)
                                                             + len(args.compare_op_threads)
                                                             + len(args.compare_stack):])},
    )
    if fit_rows:
        result.update(
            fit_member_steps_per_s=sum(row["steps_per_s"] for row in fit_rows),
            fit_steps_per_s_per_job=statistics.mean(row["steps_per_s"] for row in fit_rows),
            fit_build_first_step_s=statistics.mean(r["build_first_step_s"] for r in fit_rows))
    result["speedup"] = result["new_member_steps_per_s"] / result["old_member_steps_per_s"]
    flops = limit.flops_per_member_step(depth, args.width, args.batch_size)
    result.update(flops_per_member_step=flops,
                  old_gflops=result["old_member_steps_per_s"] * flops / 1e9,
                  new_gflops=result["new_member_steps_per_s"] * flops / 1e9)
    return result


def protocol_estimate(rows: list[dict], runs_per_depth: int, steps: int) -> dict:
    """Estimated wall seconds of the protocol on each path (None if a depth failed)."""
    if any("error" in row for row in rows):
        return {"old_s": None, "new_s": None}
    def alone(prefix):
        return sum(runs_per_depth * (r[f"{prefix}_build_first_step_s"]
                                     + steps / r[f"{prefix}_steps_per_s_per_job"])
                   for r in rows) / 2

    new = sum(r["new_build_first_step_s"] + steps / r["new_steps_per_s"] for r in rows)
    fit = alone("fit") if all("fit_steps_per_s_per_job" in r for r in rows) else None
    return {"old_s": alone("old"), "new_s": new, "fit_s": fit}


def markdown_table(rows: list[dict], limit_gflops: float | None = None) -> str:
    """One row per depth; with the machine's matmul rate, each path's GFLOP/s and its share
    of that rate."""
    header, body = _speed_columns(rows)
    if limit_gflops is not None:
        header += ["GFLOP/s: runs / population",
                   f"share of the limit ({limit_gflops:.0f} GFLOP/s): runs / population"]
        for row, cells in zip(rows, body):
            if "error" in row:
                cells += ["", ""]
                continue
            cells += [f"{row['old_gflops']:.1f} / {row['new_gflops']:.1f}",
                      f"{100 * row['old_gflops'] / limit_gflops:.0f}% / "
                      f"{100 * row['new_gflops'] / limit_gflops:.0f}%"]
    return table(header, body).rstrip("\n")


def _speed_columns(rows: list[dict]) -> tuple[list[str], list[list]]:
    """The table's header and a row of cells per depth, before the limit's columns."""
    first = next((r for r in rows if "error" not in r), {})
    compared = [("groups_member_steps_per_s", count, f"population in {count} parts")
                for count in first.get("groups_member_steps_per_s", {})]
    compared += [("op_threads_member_steps_per_s", count,
                  f"population with {OP_THREADS_LABEL.get(count, count)} threads per op")
                 for count in first.get("op_threads_member_steps_per_s", {})]
    compared += [("stack_member_steps_per_s", name, f"population, layers by {name}")
                 for name in first.get("stack_member_steps_per_s", {})]
    compared += [("tree_member_steps_per_s", tree, f"population, code of {tree}")
                 for tree in first.get("tree_member_steps_per_s", {})]
    if "fit_member_steps_per_s" in first:
        compared.append(("fit_member_steps_per_s", None,
                         "one run per process with Keras fit (before the one engine), 2 jobs"))
    header = ["depth", "one run per process, 2 jobs: member-steps/s",
              f"population of {rows[0]['members']}: member-steps/s", "speed-up",
              "build + first step: run / population (s)", "cores busy: runs / population",
              *(f"{label}: member-steps/s" for _, _, label in compared)]
    body = []
    for r in rows:
        if "error" in r:
            body.append([r["depth"], r["error"], *[""] * (len(header) - 2)])
            continue
        body.append([r["depth"], f"{r['old_member_steps_per_s']:.0f}",
                     f"{r['new_member_steps_per_s']:.0f}", f"{r['speedup']:.2f}x",
                     f"{r['old_build_first_step_s']:.1f} / {r['new_build_first_step_s']:.1f}",
                     f"{r['old_cores_busy']:.2f} / {r['new_cores_busy']:.2f}",
                     *(f"{r[key] if count is None else r[key][count]:.0f}"
                       for key, count, _ in compared)])
    return header, body


OP_THREADS_LABEL = {"0": "all cores'"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m highway_study.bench.sweep",
        description="Member-steps/s of one run per process vs populations, and the "
                    "estimated wall time of the blog's full protocol on each.")
    parser.add_argument("--depths", type=int, nargs="+", default=PROTOCOL_DEPTHS)
    parser.add_argument("--members", type=int, default=21,
                        help="runs per depth trained as one population (7 biases x 3 seeds)")
    parser.add_argument("--width", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--steps", type=int, default=20, help="steps per timed window")
    parser.add_argument("--windows", type=int, default=3, help="timed windows (median)")
    parser.add_argument("--protocol-steps", type=int, default=5000,
                        help="training steps per run in the estimate (the blog's 5,000)")
    parser.add_argument("--compare-groups", type=int, nargs="+", default=[], metavar="N",
                        help="also time the population cut into N parts (default: the "
                             "launcher's own choice, training.batched.default_groups)")
    parser.add_argument("--compare-op-threads", type=int, nargs="+", default=[], metavar="N",
                        help="also time the population with N threads per op (0: "
                             "TensorFlow's default, all cores; the launcher's own is "
                             "runtime.threads.POPULATION_OP_THREADS)")
    parser.add_argument("--compare-stack", nargs="+", default=[], choices=["xla", "native"],
                        help="also time the population with its highway layers by XLA or by "
                             "the compiled kernel (the launcher's own choice: "
                             "training.stack_choice, $HIGHWAY_STUDY_STACK)")
    parser.add_argument("--compare-tree", nargs="+", default=[], metavar="DIR",
                        help="also time the population with the code of another checkout "
                             "of the project (an earlier commit, say)")
    parser.add_argument("--compare-fit", action="store_true",
                        help="also time one run per process as it trained before the one "
                             "engine (Keras fit), in the same windows")
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--cell-timeout", type=float, default=1800,
                        help="seconds one cell may live (build and all its windows)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    require_positive(parser, args, ["members", "width", "batch_size", "steps", "windows",
                                    "protocol_steps"], ["depths", "compare_groups"])
    if any(count < 0 for count in args.compare_op_threads):
        parser.error(f"--compare-op-threads holds {min(args.compare_op_threads)}: use 0 "
                     "(TensorFlow's default) or a positive number of threads.")
    return args


def limit_text(args, estimate: dict, rate: float, cpu: tuple[str, str]) -> str:
    """The protocol's FLOPs, the arithmetic limit in minutes at `rate` (FLOP/s) and each
    column's estimate as a multiple of it."""
    flops = limit.protocol_flops(args.depths, args.members, args.protocol_steps, args.width,
                                 args.batch_size)
    floor = flops / rate
    lines = [f"CPU: {cpu[0]}, {cpu[1]}, {os.cpu_count()} logical CPUs. Largest float32 "
             f"matmul rate ({limit.LIMIT_SIZE}^3, best of {limit.LIMIT_REPEATS}, all cores): "
             f"{rate / 1e9:.0f} GFLOP/s.",
             f"The protocol's matmuls: {flops / 1e12:.0f} TFLOP; at that rate "
             f"{floor / 60:.1f} min (the arithmetic limit)."]
    for key, label in (("old_s", "one run per process"), ("new_s", "populations"),
                       ("fit_s", "Keras fit, one run per process")):
        if estimate.get(key) is not None:
            lines.append(f"{label}: {estimate[key] / 60:.0f} min, "
                         f"{estimate[key] / floor:.1f}x the limit")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    started, load_before = time.time(), os.getloadavg()
    cpu = limit.this_cpu()
    rates = [limit.matmul_rate()]  # before and after the depths: the better of the two
    rows = []
    for depth in args.depths:
        rows.append(measure_depth(depth, args))
        print(f"# depth {depth}: " + (rows[-1].get("error") or
              f"{rows[-1]['speedup']:.2f}x"), file=sys.stderr, flush=True)
    rates.append(limit.matmul_rate())
    rate = max(rates)
    estimate = protocol_estimate(rows, args.members, args.protocol_steps)
    print(markdown_table(rows, rate / 1e9))
    if estimate["old_s"] is not None:
        print(f"\nEstimated wall time of the protocol ({len(args.depths)} depths x "
              f"{args.members} runs x {args.protocol_steps} steps): one run per process "
              f"{estimate['old_s'] / 60:.0f} min, populations {estimate['new_s'] / 60:.0f} min "
              f"({estimate['old_s'] / estimate['new_s']:.1f}x).")
        if estimate.get("fit_s") is not None:
            print(f"One run per process with Keras fit (before the one engine), in the same "
                  f"windows: {estimate['fit_s'] / 60:.0f} min.")
    print(limit_text(args, estimate, rate, cpu))
    meta = {"command": "python -m highway_study.bench.sweep " + " ".join(
                argv if argv is not None else sys.argv[1:]),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
            "cpu": cpu[0], "vectors": cpu[1], "matmul_gflops": [r / 1e9 for r in rates],
            "load_avg_before": load_before, "load_avg_after": os.getloadavg(),
            "wall_s": time.time() - started}
    print(f"load average before {load_before}, after {meta['load_avg_after']}; "
          f"{meta['wall_s']:.0f} s")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"meta": meta, "rows": rows, "estimate": estimate}, out, indent=2)
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
