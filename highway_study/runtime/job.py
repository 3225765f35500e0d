"""One job of a run or sweep: skip, train or resume, and always leave a run record.

- A run folder whose summary says `completed` or `diverged` holds a result: it is not
  trained again and its recorded objective is returned (refused, in one sentence, when it
  was made with another config);
- any other run trains (resuming from its checkpoint; see training.checkpoint), unless it
  holds finished epochs of another config: that is refused in one sentence, folder untouched;
- an unreadable summary.json (empty, cut off) is reported and the run counts as unfinished;
- SIGTERM or Ctrl-C stops it at the next safe point with status `interrupted`;
- user errors (missing or corrupt data) end a single run with one sentence and exit code 1;
  so does any other error of a single run (out of memory, ...), its record saying failed
  (the traceback instead when the user set HYDRA_FULL_ERROR=1, see `show_tracebacks`);
  in a sweep every failure is recorded as status `failed` and the sweep goes on.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path

from omegaconf import OmegaConf

from highway_study import record
from highway_study.config import ConfigError
from highway_study.data.dataset import DataError
from highway_study.data.idx import IdxError
from highway_study.data.mnist import ChecksumError, DataNotFoundError
from highway_study.runtime.signals import StopRequests

log = logging.getLogger("highway_study")

# Exceptions caused by the user's input, reported in one sentence without traceback.
USER_ERRORS = (DataNotFoundError, IdxError, ChecksumError, ConfigError, DataError)
FULL_ERROR_ENV = "HYDRA_FULL_ERROR"  # the user's switch for full error reports


# Run folders a population trained in this process: their task function reports them as
# trained, not as found finished.
_TRAINED_HERE: set[Path] = set()


def trained_in_this_process(run_dirs) -> None:
    _TRAINED_HERE.update(Path(d).resolve() for d in run_dirs)


# Whether a single run's unexpected error is re-raised (Hydra's full report) rather than
# told in one sentence: __main__ sets it from the user's HYDRA_FULL_ERROR.
_FULL_REPORT = False


def show_tracebacks(full_report: bool) -> None:
    """Re-raise a single run's unexpected errors (the user asked for full reports) or not."""
    global _FULL_REPORT
    _FULL_REPORT = full_report


class ConfigChanged(RuntimeError):
    """The run folder holds a run (finished, or with epochs to resume) of another config;
    the message is one sentence."""


def run_job(cfg, run_dir: Path, multirun: bool):
    """Train (or skip) the run `cfg` describes in `run_dir`; return its objective (a list of
    them when `optimized_metric` is a list)."""
    from highway_study.training import Interrupted, train  # TensorFlow loads here

    try:  # a finished run in this folder (a rerun sweep) is not trained again
        recorded = recorded_objective(run_dir, cfg, multirun)
    except ConfigChanged as error:  # refuse without touching its record
        return refuse(str(error), multirun, exit_code=1, metric=cfg.optimized_metric)
    if recorded is not None:
        if Path(run_dir).resolve() in _TRAINED_HERE:
            _TRAINED_HERE.discard(Path(run_dir).resolve())
            _log_end(run_dir, record.read_summary(run_dir))
        else:
            log.info("%s: already finished, not trained again", run_dir.name)
        return recorded
    with StopRequests() as stop:
        try:
            summary = train(cfg, run_dir, verbose=not multirun, should_stop=stop)
        except (Interrupted, KeyboardInterrupt) as interrupt:  # stop the sweep too
            seconds = getattr(interrupt, "seconds", None)
            print(record_interruption(run_dir, cfg, stop.name, seconds), file=sys.stderr)
            sys.exit(stop.exit_code)
        except USER_ERRORS as error:
            record_failure(run_dir, cfg, str(error))
            return refuse(str(error), multirun, exit_code=1, metric=cfg.optimized_metric)
        except Exception as error:  # noqa: BLE001 - one broken run must not end a sweep
            record_failure(run_dir, cfg, f"{type(error).__name__}: {error}")
            if not multirun:
                if _FULL_REPORT:
                    raise
                print(failure_sentence(run_dir, error), file=sys.stderr)
                sys.exit(1)  # not through Hydra, which would add its own error line
            log.exception("run failed; recorded as status failed")
            return no_result(cfg.optimized_metric)
    if multirun:
        _log_end(run_dir, summary)
    if stop():  # the signal came after the last epoch: the run is done, the sweep stops
        sys.exit(stop.exit_code)
    return record.objectives(summary, cfg.optimized_metric)


def recorded_objective(run_dir, cfg, multirun: bool = True):
    """The objective(s) of the finished run in `run_dir` (as record.objectives gives them),
    or None when it has to be trained.

    Raises ConfigChanged when the folder's run (finished, or unfinished with epochs that a
    rerun would resume) used a different config, so that it is neither overwritten, nor
    resumed under the new values, nor silently reported for the new config; the message
    names the folder option of this kind of run (hydra.sweep.dir in a sweep, else
    hydra.run.dir).
    """
    summary = read_summary_or_warn(run_dir)
    current = json.loads(json.dumps(_config(cfg)))
    folder_option = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    if summary is not None and summary.finished:
        changed = sorted(_changed_keys(summary.config, current))
        if changed:
            raise ConfigChanged(
                f"{run_dir} already holds a finished run whose config differs in "
                f"{', '.join(changed)}: rerun into a new {folder_option} (or delete that "
                "folder)."
            )
        return record.objectives(summary, cfg.optimized_metric)
    from highway_study.training import checkpoint  # TensorFlow loads here

    previous = checkpoint.saved_config(run_dir) or (summary.config if summary else None)
    epochs = len(record.read_metrics(run_dir))
    if previous is not None and (epochs or checkpoint.has_checkpoint(run_dir)):
        changed = sorted(_changed_keys(previous, current))
        if changed:
            raise ConfigChanged(
                f"{run_dir} holds an unfinished run ({epochs} epochs recorded) whose config "
                f"differs in {', '.join(changed)}: rerun it with its own config to resume it, "
                "or run the new config into another folder."
            )
    return None


def read_summary_or_warn(run_dir) -> record.Summary | None:
    """The folder's summary; None (with a warning) when summary.json cannot be read."""
    try:
        return record.read_summary(run_dir)
    except (ValueError, OSError) as error:  # cut-off JSON, not a run record, unreadable
        log.warning("%s: summary.json cannot be read (%s); the run is treated as unfinished.",
                    run_dir, _first_line(error))
        return None


def _changed_keys(old: dict, new: dict, prefix: str = "") -> set[str]:
    """Keys whose values differ. A key only one side has (added or dropped by a code update)
    does not count: it cannot have changed what the finished run measured."""
    keys = set()
    for key in old.keys() & new.keys():
        a, b = old[key], new[key]
        if isinstance(a, dict) and isinstance(b, dict):
            keys |= _changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.add(f"{prefix}{key}")
    return keys


def refuse(message: str, multirun: bool, exit_code: int, metric="best_val_accuracy"):
    """End a run on the user's mistake: in a sweep log it and score 0 on every objective of
    `metric` so the sweep goes on; alone, print the one sentence and exit with `exit_code`
    (no traceback)."""
    if multirun:
        log.error("%s", message)
        return no_result(metric)
    print(message, file=sys.stderr)
    sys.exit(exit_code)


def no_result(metric):
    """0 on every objective `metric` names, in the shape the sweeper expects (a list for a
    list of names, even one whose names are wrong: the sweep goes on either way)."""
    try:
        return record.objectives(None, metric)
    except ValueError:
        return [0.0] * len(metric) if record.is_list(metric) else 0.0


def record_failure(run_dir: Path, cfg, message: str) -> None:
    """Write summary.json with status `failed`, unless the folder already holds a result
    (a rerun with a bad value must not replace a finished run's record)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        existing = record.read_summary(run_dir)
    except (ValueError, OSError):
        existing = None
    if existing is not None and existing.finished:
        return
    record.write_summary(run_dir, record.failed(_config(cfg), message,
                                                record.read_metrics(run_dir)))


def failure_sentence(run_dir, error: BaseException) -> str:
    """The one sentence a single run's unexpected error ends in."""
    detail = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", _first_line(error)).strip()
    what = f"{type(error).__name__}{': ' + detail.rstrip('. :') if detail else ''}"
    if isinstance(error, MemoryError) or "ResourceExhausted" in type(error).__name__:
        return (f"{run_dir}: the run ran out of memory ({what}): use a smaller depth, width or "
                "batch_size; summary.json records it as failed.")
    return (f"{run_dir}: the run failed ({what}); summary.json records it as failed, and "
            f"{FULL_ERROR_ENV}=1 shows the traceback.")


def record_interruption(run_dir, cfg, why: str, seconds=None, sweeper=None) -> str:
    """Write summary.json with status `interrupted` from the epochs on disk; return the message,
    which says what a rerun does: a grid or single run resumes, an Optuna search does not.
    `sweeper`: the sweep's hydra.sweeper node (default: this job's, from HydraConfig)."""
    rows = record.read_metrics(run_dir)
    message = f"{run_dir}: interrupted by {why} after epoch {len(rows)}; " + (
        "this trial stays as a record with status interrupted, and rerunning the same command "
        "continues the Optuna study with new trials (it does not resume this one)."
        if is_optuna(sweeper if sweeper is not None else _job_sweeper()) else
        "rerun the same command with this folder as hydra.run.dir (or its sweep's "
        "hydra.sweep.dir) to resume.")
    record.write_summary(run_dir, record.interrupted(_config(cfg), message, rows, seconds))
    return message


def is_optuna(sweeper) -> bool:
    """Whether a hydra.sweeper node is an Optuna search (whose rerun asks for new trials)."""
    if sweeper is None:
        return False
    return "optuna" in str(sweeper.get("_target_", "")).lower() or "study_name" in sweeper


def _job_sweeper():
    """This job's hydra.sweeper node; None outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().sweeper if HydraConfig.initialized() else None


def _log_end(run_dir, summary) -> None:
    """The line a sweep logs as one of its runs ends."""
    log.info("%s: %s, best val acc %s, %.0f s", Path(run_dir).name, summary.status,
             _pct(summary.best_val_accuracy), summary.wall_seconds or 0.0)


def _config(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"
