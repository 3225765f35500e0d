"""`hydra/launcher=population`: a sweep's jobs grouped by shape, each group one population.

Jobs whose configurations share a shape (training.population.shape_key) and can train in a
population become one batched computation in this process; every other job (a group of
one, a model a population cannot train, a finished run to skip, a bad config to refuse)
goes through the task function exactly as Hydra's basic launcher would send it. Every job
still gets its own folder, .hydra/ files, run record, progress line and JobReturn, in the
order of the sweep, so grids and the Optuna sweeper (`hydra.sweeper.n_jobs` trials per
batch) use it without new syntax.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, configure_log, run_job, setup_globals
from omegaconf import OmegaConf, open_dict, read_write

from highway_study.config import ConfigError, validate
from highway_study.runtime import job as job_lib
from highway_study.runtime.lock import RunLocked, run_lock
from highway_study.runtime.signals import StopRequests
from highway_study.runtime.threads import job_threads, limit_threads, op_threads

log = logging.getLogger("highway_study")


@dataclass
class Job:
    index: int
    config: object  # the sweep config, hydra node included
    task_cfg: object
    run_dir: Path


def launch(launcher, job_overrides, initial_job_idx: int) -> list[JobReturn]:
    """Run every job of one sweep batch; JobReturns in the order of `job_overrides`."""
    return launch_indexed(launcher, [(list(overrides), initial_job_idx + i)
                                     for i, overrides in enumerate(job_overrides)])


def launch_indexed(launcher, indexed_overrides) -> list[JobReturn]:
    """launch() for jobs given as (overrides, job index) pairs: what one cluster task of
    `hydra/launcher=population_slurm` runs for its group."""
    setup_globals()
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    launcher_cfg = launcher.config.hydra.launcher  # before TensorFlow's first op here
    limit_threads(job_threads(launcher_cfg), op_threads(launcher_cfg))
    Path(str(launcher.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    jobs = [_job(launcher, overrides, index) for overrides, index in indexed_overrides]
    returns: dict[int, JobReturn] = {}
    for members in plan(jobs, launcher.min_members):
        if len(members) > 1:
            with contextlib.ExitStack() as locks:
                _train_population(_lock(members, locks), launcher.groups)
        for job in members:  # the task function: skip what the population finished, refuse
            returns[job.index] = _run(launcher, job, launcher.task_function)  # or train
    return [returns[job.index] for job in jobs]


def check_launcher_options(groups, min_members) -> None:
    """The launcher's options, checked before a sweep starts: a bad `groups` would otherwise
    fail every run deep in training, and a too small one or `min_members` be ignored.
    ConfigError (one sentence) naming the value and what is allowed."""
    if groups is not None and (not _is_int(groups) or groups < 1):
        raise ConfigError(f"hydra.launcher.groups={_shown(groups)} is not allowed: use an "
                          "integer >= 1, or null for the default (one part per core).")
    if not _is_int(min_members) or min_members < 2:
        raise ConfigError(f"hydra.launcher.min_members={_shown(min_members)} is not allowed: "
                          "use an integer >= 2 (the smallest group trained together).")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(value) -> str:
    """A value as the command line writes it."""
    return "null" if value is None else str(value).lower() if isinstance(value, bool) \
        else str(value)


def job_groups(launcher, job_overrides, initial_job_idx: int) -> list[list[tuple]]:
    """The sweep batch cut as launch() would train it: one list of (overrides, job index)
    per population, and one per job that trains alone."""
    jobs = [_job(launcher, list(overrides), initial_job_idx + i)
            for i, overrides in enumerate(job_overrides)]
    overrides = {initial_job_idx + i: list(o) for i, o in enumerate(job_overrides)}
    return [[(overrides[job.index], job.index) for job in group]
            for group in plan(jobs, launcher.min_members)]


def _lock(members: list[Job], locks: contextlib.ExitStack) -> list[Job]:
    """Take the run folder's lock of every member of a population; those whose folder
    another live process holds are left out (the task function then refuses them)."""
    locked = []
    for member in members:
        try:
            locks.enter_context(run_lock(member.run_dir))
            locked.append(member)
        except RunLocked:
            pass
    return locked


def plan(jobs: list[Job], min_members: int = 2) -> list[list[Job]]:
    """The jobs in groups: populations of >= `min_members` jobs of one shape and start
    epoch, then every other job on its own (in sweep order within each kind)."""
    from highway_study.training import population  # TensorFlow loads here

    groups: dict[tuple, list[Job]] = {}
    alone = []
    for job in jobs:
        key = _population_key(job, population)
        if key is None:
            alone.append([job])
        else:
            groups.setdefault(key, []).append(job)
    together = [members for members in groups.values() if len(members) >= min_members]
    alone += [[job] for members in groups.values() if len(members) < min_members
              for job in members]
    return together + sorted(alone, key=lambda group: group[0].index)


def _population_key(job: Job, population) -> tuple | None:
    """What a job must share with others to train with them, or None if it trains alone."""
    cfg = job.task_cfg
    try:
        validate(cfg)
        if job_lib.recorded_objective(job.run_dir, cfg) is not None:
            return None  # finished: the task function skips it
    except (ConfigError, job_lib.ConfigChanged, ValueError, OSError):
        return None  # the task function refuses it in one sentence
    return population.shape_key(cfg), population.resume_epoch(job.run_dir)


def _train_population(members: list[Job], groups) -> None:
    """Train the members as one population, each leaving its record (status failed, with
    the reason, when the population fails: the task function then tries it alone)."""
    if not members:
        return
    from highway_study.training import Interrupted
    from highway_study.training.population import train_population

    configs = [m.task_cfg for m in members]
    run_dirs = [m.run_dir for m in members]
    log.info("training %d runs as one population: %s", len(members),
             ", ".join(d.name for d in run_dirs))
    with StopRequests() as stop:
        try:
            train_population(configs, run_dirs, should_stop=stop, groups=groups)
        except (Interrupted, KeyboardInterrupt) as interrupt:
            seconds = getattr(interrupt, "seconds", None)
            sweeper = members[0].config.hydra.sweeper  # the message says what a rerun does
            for cfg, run_dir in zip(configs, run_dirs):
                print(job_lib.record_interruption(run_dir, cfg, stop.name, seconds, sweeper),
                      file=sys.stderr)
            sys.exit(stop.exit_code)
        except job_lib.USER_ERRORS as error:
            for cfg, run_dir in zip(configs, run_dirs):
                job_lib.record_failure(run_dir, cfg, str(error))
            log.error("%s", error)
            return
        except Exception as error:  # noqa: BLE001 - one broken group must not end a sweep
            for cfg, run_dir in zip(configs, run_dirs):
                job_lib.record_failure(run_dir, cfg, f"{type(error).__name__}: {error}")
            log.exception("population failed; its runs are recorded as status failed and "
                          "each is tried alone")
            return
    job_lib.trained_in_this_process(run_dirs)
    if stop():
        sys.exit(stop.exit_code)


def _job(launcher, overrides: list[str], index: int) -> Job:
    """The job's config and run folder, resolved as Hydra's run_job will resolve them."""
    config = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, overrides)
    with open_dict(config):
        config.hydra.job.id = index
        config.hydra.job.num = index
    previous = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(config)
    try:
        run_dir = Path(str(OmegaConf.select(config, "hydra.sweep.dir"))) / str(
            OmegaConf.select(config, "hydra.sweep.subdir"))
        task_cfg = copy.deepcopy(config)
        with read_write(task_cfg), open_dict(task_cfg):
            del task_cfg["hydra"]
    finally:
        HydraConfig.instance().cfg = previous
    return Job(index, config, task_cfg, Path(os.path.abspath(run_dir)))


def _run(launcher, job: Job, task_function) -> JobReturn:
    """Hydra's own run_job: output folder, .hydra/ files, callbacks, JobReturn."""
    result = run_job(hydra_context=launcher.hydra_context, task_function=task_function,
                     config=job.config, job_dir_key="hydra.sweep.dir",
                     job_subdir_key="hydra.sweep.subdir")
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    return result
