"""`python -m highway_study [overrides]`: one run (or, with -m, a sweep) of the study.

The task function validates the config, trains, writes the run record and returns the
objective (best validation accuracy, 0 for a diverged or failed run), so a sweep never
crashes on one bad run.
"""

from __future__ import annotations

import os
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from highway_study.config import ConfigError, register_configs, validate

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg) -> float:
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    run_dir = Path(hydra_cfg.runtime.output_dir)
    from highway_study.parallel import job_threads, limit_threads

    try:
        validate(cfg)
        threads = job_threads(hydra_cfg.launcher)  # a parallel job's share of the cores
    except ConfigError as error:
        return _fail(run_dir, cfg, f"Invalid config: {error}", multirun, exit_code=2)

    from highway_study.runner import run_once  # TensorFlow loads only for valid configs

    limit_threads(threads)
    return run_once(cfg, run_dir, multirun)


def _fail(run_dir, cfg, message: str, multirun: bool, exit_code: int) -> float:
    from highway_study.runner import record_failure, refuse

    record_failure(run_dir, cfg, message)
    return refuse(message, multirun, exit_code)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
