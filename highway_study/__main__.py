"""`python -m highway_study [overrides]`: one run (or, with -m, a sweep) of the study.

The task function takes the run folder's lock (one process per folder), validates the
config, hands the job to the runtime (skip, train or resume, and always a run record) and
returns the objective the config names (`optimized_metric`, best validation accuracy by
default; a list of values for a list of names; 0 for a diverged or failed run), so a sweep
never crashes on one bad run.

Hydra's own config errors (`depth=abc`, `model=resnet`, a malformed override) end, like our
checks, in one sentence and exit code 2 (runtime.errors); a single run that fails on an
unexpected error (out of memory, ...) ends in one sentence and exit code 1, its record
saying failed. Set HYDRA_FULL_ERROR=1 to see the full report instead.

The configs are the repository's conf/, installed with the package as highway_study.conf
(pyproject.toml maps one onto the other), so an installed wheel finds them too.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def _quiet_tensorflow() -> None:
    """Before TensorFlow is first imported: hide its C++ start-up INFO and WARNING lines, and
    on a machine without an NVIDIA driver its CUDA probe's error line too (`failed call to
    cuInit`), which reads like a fault where there is nothing to find. A value the user set
    is kept."""
    driver = os.path.exists("/proc/driver/nvidia") or shutil.which("nvidia-smi")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if driver else "3")


_quiet_tensorflow()

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from highway_study.config import ConfigError, register_configs, validate
from highway_study.runtime.errors import describe
from highway_study.runtime.job import (FULL_ERROR_ENV, record_failure, refuse, run_job,
                                       show_tracebacks)
from highway_study.runtime.lock import RunLocked, run_lock
from highway_study.runtime.progress import SweepRefused
from highway_study.runtime.threads import job_threads, limit_threads, op_threads

register_configs()


def _expose_population_launchers() -> None:
    """Hydra finds launchers by walking the `hydra_plugins` namespace on sys.path. An
    installed wheel has ours there; an editable install maps it through an import hook the
    walk cannot read, so the source tree's plugin root joins sys.path (the same files, so
    one module either way) and Hydra's own discovery finds the launchers."""
    root = Path(__file__).parent / "runtime" / "plugins"
    if (root / "hydra_plugins").is_dir() and str(root) not in sys.path:
        sys.path.append(str(root))


_expose_population_launchers()


@hydra.main(version_base="1.3", config_path="pkg://highway_study.conf", config_name="config")
def main(cfg):
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        with run_lock(run_dir):
            return _job(cfg, hydra_cfg, run_dir, multirun)
    except RunLocked as error:  # another live process works in this folder: touch nothing
        return refuse(str(error), multirun, exit_code=1, metric=cfg.optimized_metric)


def _job(cfg, hydra_cfg, run_dir: Path, multirun: bool):
    try:
        validate(cfg)
        threads = job_threads(hydra_cfg.launcher)  # a parallel job's share of the cores
    except ConfigError as error:
        message = f"Invalid config: {error}"
        record_failure(run_dir, cfg, message)
        return refuse(message, multirun, exit_code=2, metric=cfg.optimized_metric)
    # before TensorFlow's first op, which run_job brings
    limit_threads(threads, op_threads(hydra_cfg.launcher) if multirun else None)
    return run_job(cfg, run_dir, multirun)


def cli() -> None:
    """Run `main`, turning Hydra's config errors into one sentence and exit code 2, and a
    single run's failure into one sentence and exit code 1."""
    full_report = os.environ.get(FULL_ERROR_ENV) == "1"
    os.environ[FULL_ERROR_ENV] = "1"  # Hydra raises instead of printing its own report
    show_tracebacks(full_report)
    try:
        main()
    except SweepRefused as error:
        print(f"Invalid config: {error}", file=sys.stderr)
        sys.exit(2)
    except Exception as error:  # noqa: BLE001 - anything else is re-raised unchanged
        message = None if full_report else describe(error)
        if message is None:
            raise
        print(message, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    cli()
