"""`python -m highway_study [overrides]`: one run (or, with -m, a sweep) of the study.

The task function validates the config, hands the job to the runtime (skip, train or
resume, and always a run record) and returns the objective the config names
(`optimized_metric`, best validation accuracy by default; 0 for a diverged or failed run),
so a sweep never crashes on one bad run.

The configs are the repository's conf/, installed with the package as highway_study.conf
(pyproject.toml maps one onto the other), so an installed wheel finds them too.
"""

from __future__ import annotations

import os
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from highway_study.config import ConfigError, register_configs, validate
from highway_study.runtime.job import record_failure, refuse, run_job
from highway_study.runtime.threads import job_threads, limit_threads

register_configs()


def _register_population_launcher() -> None:
    """Hydra finds launchers by walking the hydra_plugins namespace, which cannot see into
    an editable install: register hydra/launcher=population's class by hand (a regular
    install is found by the walk, and registering twice is harmless)."""
    from hydra.core.plugins import Plugins
    from hydra_plugins.highway_study_population import PopulationLauncher

    Plugins.instance()._register(PopulationLauncher)


_register_population_launcher()


@hydra.main(version_base="1.3", config_path="pkg://highway_study.conf", config_name="config")
def main(cfg) -> float:
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        validate(cfg)
        threads = job_threads(hydra_cfg.launcher)  # a parallel job's share of the cores
    except ConfigError as error:
        message = f"Invalid config: {error}"
        record_failure(run_dir, cfg, message)
        return refuse(message, multirun, exit_code=2)
    limit_threads(threads)  # before TensorFlow's first op, which run_job brings
    return run_job(cfg, run_dir, multirun)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
