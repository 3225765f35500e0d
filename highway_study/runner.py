"""Runs one training job and makes sure it always ends with a run record.

User errors (missing or corrupt data) end a single run with one sentence and exit code 1;
in a sweep every failure is recorded as status `failed` and the sweep goes on.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from omegaconf import OmegaConf

from highway_study import records

log = logging.getLogger("highway_study")


def user_errors() -> tuple:
    """Exceptions caused by the user's input, reported in one sentence without traceback."""
    from highway_study.config import ConfigError  # e.g. a conv model on data without images
    from highway_study.idx import IdxError
    from highway_study.mnist import ChecksumError, DataNotFoundError

    return (DataNotFoundError, IdxError, ChecksumError, ConfigError)


def run_once(cfg, run_dir: Path, multirun: bool) -> float:
    from highway_study import resume
    from highway_study.train import objective, train

    try:  # a finished run in this folder (a rerun sweep) is not trained again
        recorded = resume.recorded_objective(run_dir, cfg)
    except resume.ConfigChanged as error:  # refuse without touching its record
        return refuse(str(error), multirun, exit_code=1)
    if recorded is not None:
        log.info("%s: already finished, not trained again", run_dir.name)
        return recorded
    try:
        with resume.interrupts_recorded():
            summary = train(cfg, run_dir, verbose=not multirun)
    except KeyboardInterrupt as interrupt:  # Ctrl-C or SIGTERM: record it, stop the sweep
        print(resume.record_interruption(run_dir, cfg, interrupt), file=sys.stderr)
        sys.exit(resume.exit_code(interrupt))
    except user_errors() as error:
        record_failure(run_dir, cfg, str(error))
        return refuse(str(error), multirun, exit_code=1)
    except Exception as error:  # noqa: BLE001 - one broken run must not end a sweep
        record_failure(run_dir, cfg, f"{type(error).__name__}: {error}")
        if not multirun:
            raise
        log.exception("run failed; recorded as status failed")
        return 0.0
    if multirun:
        log.info("%s: %s, best val acc %s, %.0f s", run_dir.name, summary["status"],
                 _pct(summary["best_val_accuracy"]), summary["wall_seconds"])
    if resume.pending_interrupt() is not None:  # came after the last epoch: run done, stop
        sys.exit(resume.exit_code(resume.pending_interrupt()))
    return objective(summary)


def refuse(message: str, multirun: bool, exit_code: int) -> float:
    """End a run on the user's mistake: in a sweep log it and score 0 so the sweep goes on;
    alone, print the one sentence and exit with `exit_code` (no traceback)."""
    if multirun:
        log.error("%s", message)
        return 0.0
    print(message, file=sys.stderr)
    sys.exit(exit_code)


def record_failure(run_dir: Path, cfg, message: str) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    records.write_summary(run_dir, {
        "status": "failed",
        "error": message,
        "config": OmegaConf.to_container(cfg, resolve=True),
    })


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"
