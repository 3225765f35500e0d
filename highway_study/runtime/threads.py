"""Each parallel job gets its share of the CPU threads.

TensorFlow sizes its thread pools to all cores by default; with `hydra/launcher=joblib
hydra.launcher.n_jobs=N` that means N jobs each running `cores` threads, which mostly fight.
TensorFlow fixes its pool sizes when its runtime starts, so this must run before the first
op of a process; joblib reuses worker processes, where later jobs keep the same (right) sizes.

A population (`hydra/launcher=population` and its cluster variants) runs its independent
parts side by side on the inter-op pool, so each op gets one thread
(POPULATION_OP_THREADS): ops that also spread over the cores made the parts wait for each
other (docs/benchmark.md, "One thread per op").
"""

from __future__ import annotations

import logging
import os

from highway_study.config import ConfigError
from highway_study.runtime import launchers

log = logging.getLogger("highway_study")
THREADS_ENV = "HIGHWAY_STUDY_THREADS"
POPULATION_OP_THREADS = 1  # threads per op in a population's process


def job_threads(launcher_cfg) -> int | None:
    """Threads one job should use under this launcher config (None: leave TF's default).

    $HIGHWAY_STUDY_THREADS wins; joblib jobs get cores // n_jobs; submitit jobs (and the
    population launchers' cluster tasks) get their cpus_per_task.
    """
    if os.environ.get(THREADS_ENV):
        value = os.environ[THREADS_ENV]
        if not value.isdigit() or int(value) < 1:
            raise ConfigError(f"{THREADS_ENV}={value!r} is not allowed: use an integer >= 1.")
        return int(value)
    if launcher_cfg is None:
        return None
    if launchers.is_joblib(launcher_cfg):
        cores = os.cpu_count() or 1
        n_jobs = int(launcher_cfg.get("n_jobs") or -1)
        n_jobs = cores if n_jobs < 0 else min(n_jobs, cores)
        return max(1, cores // n_jobs)
    if launchers.is_submitit(launcher_cfg) and launcher_cfg.get("cpus_per_task"):
        return int(launcher_cfg.cpus_per_task)
    return None


def op_threads(launcher_cfg) -> int | None:
    """Threads one op may use under this launcher config (None: as many as the job has):
    POPULATION_OP_THREADS under the population launchers."""
    return POPULATION_OP_THREADS if launchers.is_population(launcher_cfg) else None


def limit_threads(threads: int | None, per_op: int | None = None) -> None:
    """Size TensorFlow's pools: `threads` ops at once, each using `per_op` threads (default
    `threads`); None leaves a pool at TensorFlow's default (all cores). No-op once
    TensorFlow's runtime has started."""
    per_op = threads if per_op is None else per_op
    if threads is None and per_op is None:
        return
    import tensorflow as tf

    try:
        if per_op is not None:
            tf.config.threading.set_intra_op_parallelism_threads(per_op)
        if threads is not None:
            tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # runtime already started in this (reused) worker: sizes stay
        return
    per_op = tf.config.threading.get_intra_op_parallelism_threads() or "all cores"
    at_once = tf.config.threading.get_inter_op_parallelism_threads() or "one per core"
    log.info("TensorFlow threads in this job: %s per op; ops at once: %s", per_op, at_once)
