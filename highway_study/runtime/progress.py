"""A sweep's progress: one line per finished run with runs done / total, failures, time left,
and one line at the end naming the failed and diverged runs.

A Hydra callback (registered in conf/config.yaml under hydra.callbacks). Hydra calls
`on_job_end` in the process that ran the job, which under joblib or submitit is not the
process that started the sweep, so the count lives on disk: every finished job appends one
JSON line to `<sweep dir>/progress.jsonl` (small appends are atomic), and each line printed
is computed from that file. A rerun of the same sweep starts a new section of the file.

Under submitit (submitit_local, Slurm) each job's output goes to its own log file under
`.submitit/`, so the process that started the sweep follows progress.jsonl in a background
thread and prints the lines there. When every run of a sweep was skipped (a rerun into a
folder whose runs are all finished), the sweep ends with one line that says so and how to
train them again.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

from hydra.experimental.callback import Callback
from hydra.types import RunMode

from highway_study import record
from highway_study.config import ConfigError
from highway_study.runtime import launchers

log = logging.getLogger("highway_study.progress")
PROGRESS_FILE = "progress.jsonl"


class SweepProgress(Callback):
    """Prints `sweep progress: 3/12 runs done, 1 failed, 0 diverged, about 2m10s left`."""

    def __init__(self) -> None:
        self._summary_before = None  # summary.json's mtime when the current job started
        self._sweep_started_ns = None  # when this sweep began (on_multirun_start)
        self._watcher = None

    def __getstate__(self) -> dict:  # launchers pickle the callbacks into each job
        return {**self.__dict__, "_watcher": None}

    def on_multirun_start(self, config, **kwargs) -> None:
        check_sweeper(config.hydra.sweeper)
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        self._sweep_started_ns = time.time_ns()
        _append(sweep_dir, {"event": "start", "total": planned_runs(config), "time": time.time()})
        if launchers.is_submitit(config.hydra.launcher):
            self._watcher = ProgressWatcher(sweep_dir)  # jobs log to .submitit/, not here
            self._watcher.start()

    def on_job_start(self, config, **kwargs) -> None:
        if config.hydra.mode == RunMode.MULTIRUN:
            self._summary_before = _mtime(Path(config.hydra.runtime.output_dir))

    def on_job_end(self, config, job_return, **kwargs) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        run_dir = Path(config.hydra.runtime.output_dir)
        try:
            summary = record.read_summary(run_dir)
        except (ValueError, OSError):  # a corrupt record counts as a failed run
            summary = None
        status = summary.status if summary is not None else "failed"
        # Not written by this sweep: the run was finished before (skipped, or refused). A
        # population launcher writes its members' records before their jobs "run", so the
        # test is against the sweep's start, not the job's.
        written = _mtime(run_dir)
        if self._sweep_started_ns is not None:
            skipped = written is not None and written < self._sweep_started_ns
        else:
            skipped = self._summary_before is not None and written == self._summary_before
        sweep_dir = Path(config.hydra.sweep.dir)
        _append(sweep_dir, {"event": "end", "run": run_dir.name, "status": status,
                            "skipped": skipped, "time": time.time()})
        log.info("%s", progress_line(read_progress(sweep_dir)))

    def on_multirun_end(self, config, **kwargs) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        sweep_dir = config.hydra.sweep.dir
        state = read_progress(sweep_dir)
        log.log(logging.WARNING if state["failed"] else logging.INFO, "%s", final_line(state))
        if state["done"] and state["skipped"] == state["done"]:
            log.warning("%s", all_skipped_line(sweep_dir, state["done"]))


class ProgressWatcher(threading.Thread):
    """Prints the progress line in this process whenever progress.jsonl counts more runs."""

    def __init__(self, sweep_dir, interval: float = 1.0) -> None:
        super().__init__(name="sweep-progress", daemon=True)
        self.sweep_dir, self.interval = sweep_dir, interval
        self.shown = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.poll()

    def poll(self) -> None:
        state = read_progress(self.sweep_dir)
        if state["done"] > self.shown:
            self.shown = state["done"]
            log.info("%s", progress_line(state))

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        self.poll()  # the last runs may have ended since the last look


def all_skipped_line(sweep_dir, runs: int) -> str:
    return (f"Nothing was trained: all {runs} runs of this sweep already had a finished run in "
            f"{sweep_dir}, and a rerun skips finished runs; to train them again, rerun into a "
            f"new folder, e.g. hydra.sweep.dir={str(sweep_dir).rstrip('/')}_2")


class SweepRefused(BaseException):
    """A sweep set-up that must not start; the message is one sentence (a ConfigError's).

    A BaseException because Hydra turns a callback's Exceptions into warnings and goes on;
    __main__ reports it like any bad config value (exit code 2).
    """


def check_sweeper(sweeper) -> None:
    """Refuse an Optuna search that would ask for no trial (or loop forever asking for 0 at
    a time), before the sweeper starts: SweepRefused, reported as one sentence."""
    for key in ("n_trials", "n_jobs"):
        if key in sweeper:
            value = sweeper[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SweepRefused(str(ConfigError(
                    f"hydra.sweeper.{key}={value!r} is not allowed: use an integer >= 1.")))


def planned_runs(config) -> int | None:
    """How many runs this sweep launches: a grid's size, or the Optuna search's n_trials."""
    sweeper = config.hydra.sweeper
    if "n_trials" in sweeper:
        return int(sweeper.n_trials)
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        params = [f"{key}={value}" for key, value in (sweeper.get("params") or {}).items()]
        params += list(config.hydra.overrides.task)
        overrides = OverridesParser.create().parse_overrides(params)
        return len(BasicSweeper.split_arguments(overrides, None)[0])
    except Exception:  # noqa: BLE001 - an unknown total only hides the time estimate
        return None


def read_progress(sweep_dir) -> dict:
    """Counts since the sweep's latest start: total, done, failed, diverged, elapsed seconds."""
    path = Path(sweep_dir) / PROGRESS_FILE
    events = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    starts = [i for i, event in enumerate(events) if event.get("event") == "start"]
    start = events[starts[-1]] if starts else {"total": None, "time": time.time()}
    ends = [event for event in events[(starts[-1] + 1 if starts else 0):]
            if event.get("event") == "end"]
    failed = [event.get("run", "?") for event in ends
              if event["status"] in ("failed", "interrupted")]
    diverged = [event.get("run", "?") for event in ends if event["status"] == "diverged"]
    return {
        "total": start.get("total"),
        "done": len(ends),
        "failed": len(failed),
        "diverged": len(diverged),
        "skipped": sum(bool(event.get("skipped")) for event in ends),
        "failed_runs": failed,
        "diverged_runs": diverged,
        "elapsed": max((event["time"] for event in ends), default=start["time"]) - start["time"],
    }


def progress_line(state: dict) -> str:
    total, done = state["total"], state["done"]
    line = (f"sweep progress: {done}/{total if total is not None else '?'} runs done, "
            f"{state['failed']} failed, {state['diverged']} diverged")
    if total is not None and done:
        left = max(total - done, 0) * state["elapsed"] / done
        line += f", about {_duration(left)} left"
    return line


def final_line(state: dict) -> str:
    """`sweep finished: 4 runs, 2 failed (a; b), 1 diverged (c) ...`: the sweep's last line.

    The exit code stays 0 whatever failed: the sweepers (Optuna's above all) need every run
    to return, and each run's summary.json says why it failed.
    """
    line = f"sweep finished: {state['done']} runs"
    for key in ("failed", "diverged"):
        names = state[f"{key}_runs"]
        line += f", {len(names)} {key}" + (f" ({'; '.join(names)})" if names else "")
    if state["failed"] or state["diverged"]:
        line += ("; the exit code stays 0 (a failed run never stops a sweep): each run's "
                 "summary.json says why")
    return line


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def _mtime(run_dir: Path) -> int | None:
    try:
        return (run_dir / record.SUMMARY_FILE).stat().st_mtime_ns
    except OSError:
        return None


def _append(sweep_dir: Path, event: dict) -> None:
    with open(sweep_dir / PROGRESS_FILE, "a", encoding="utf-8") as stream:
        stream.write(json.dumps(event) + "\n")
        stream.flush()
        os.fsync(stream.fileno())
