"""Checks made once before a sweep launches anything, each ending in one sentence.

A Hydra callback (registered in conf/config.yaml under hydra.callbacks, before the progress
callback): `on_multirun_start` runs in the process that starts the sweep, before the
sweeper asks for a trial or the launcher submits a job, so a refusal leaves no half-made
sweep and no trial behind.

- `hydra/launcher=slurm` needs Slurm's commands on this machine (submitit looks for `srun`);
  without them submitit raises deep inside the launcher, so say it here instead.
- An Optuna search needs one direction per objective (`hydra.sweeper.direction` against
  `optimized_metric`): the sweeper would otherwise fail every trial after training it.
- An Optuna search may only add trials to a study of the same search (see study_guard),
  and its SQLite file must be writable.
- The population launcher's options (`hydra.launcher.groups`, `min_members`) must be usable.
- The run or sweep folder (`hydra.run.dir`, `hydra.sweep.dir`) must be a folder this process
  can create or write: Hydra would otherwise fail creating it with a long traceback.
- Once everything is checked, the sweep takes its folder's lock (runtime.lock) until it ends,
  so a second sweep into the same folder exits 1 instead of mixing its runs and progress
  lines with the first's.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from highway_study import record
from highway_study.config import ConfigError
from highway_study.runtime.lock import RunLocked, sweep_lock
from highway_study.runtime.progress import check_sweeper
from highway_study.runtime.storage import StorageError
from highway_study.runtime.study_guard import StudyMismatch, check_study
from highway_study.runtime import launchers

SLURM_COMMANDS = ("srun", "sbatch")
DIRECTIONS = ("minimize", "maximize")


class SweepChecks(Callback):
    """Refuses a run or sweep that cannot work, in one sentence, before anything starts."""

    def __init__(self) -> None:
        self._lock = None  # the sweep folder's lock, held from start to end of the sweep

    def __getstate__(self) -> dict:  # launchers pickle the callbacks into each job
        return {**self.__dict__, "_lock": None}

    def on_run_start(self, config, **kwargs) -> None:
        _refuse_on_error(lambda: check_folder("hydra.run.dir", config.hydra.run.dir))

    def on_multirun_start(self, config, **kwargs) -> None:
        _refuse_on_error(lambda: check_sweep(config))
        try:
            self._lock = sweep_lock(config.hydra.sweep.dir)
        except RunLocked as error:  # another live sweep works there: touch nothing
            print(error, file=sys.stderr)
            sys.exit(1)

    def on_multirun_end(self, config, **kwargs) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def check_sweep(config) -> None:
    """Every check a sweep passes before it starts (the study's last: it writes to it)."""
    check_launcher(config.hydra.launcher,
                   config.hydra.runtime.choices.get("hydra/launcher", "slurm"))
    check_launcher_options(config.hydra.launcher)
    check_sweeper(config.hydra.sweeper)
    check_objectives(config)
    check_folder("hydra.sweep.dir", config.hydra.sweep.dir)
    check_study(config)


def _refuse_on_error(check) -> None:
    """Run `check`; a refusal ends the process with its one sentence and exit code 2 (an
    exit, since Hydra turns a callback's exceptions into warnings and goes on)."""
    try:
        check()
    except ConfigError as error:
        print(f"Invalid config: {error}", file=sys.stderr)
        sys.exit(2)
    except (LauncherUnavailable, StudyMismatch, StorageError) as error:
        print(error, file=sys.stderr)
        sys.exit(2)


def check_folder(option: str, folder) -> None:
    """`folder` (the value of `option`) must be a folder this process can create or write:
    its nearest existing part must be a writable folder. ConfigError otherwise."""
    existing = Path(str(folder))
    while not os.path.lexists(existing) and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{option}={folder} is not allowed: {existing} is a file, not a "
                          "folder; give a new folder or an existing one.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{option}={folder} is not allowed: {existing} is not writable; "
                          "give a folder this user can write to.")


def check_launcher_options(launcher) -> None:
    """The population launchers' own options (ConfigError, from runtime.population)."""
    if launchers.is_population(launcher):
        from highway_study.runtime.population import check_launcher_options as check

        check(launcher.get("groups"), launcher.get("min_members", 2))


def check_objectives(config) -> None:
    """An Optuna search's objectives (`optimized_metric`) must be known names, one for each
    direction: a list of names with a list of as many directions, one name with one
    direction. ConfigError (one sentence) otherwise; other sweeps are not checked here."""
    sweeper = config.hydra.sweeper
    if "direction" not in sweeper:
        return
    metric = config.get("optimized_metric", "best_val_accuracy")
    try:
        names = record.metric_names(metric)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    direction = sweeper.direction
    many = OmegaConf.is_list(direction) or isinstance(direction, (list, tuple))
    directions = [getattr(d, "name", d) for d in (direction if many else [direction])]
    shown = f"hydra.sweeper.direction={_listed(directions) if many else directions[0]}"
    for value in directions:
        if value not in DIRECTIONS:
            raise ConfigError(f"{shown} holds {value!r}, which is not allowed: use "
                              f"{' or '.join(DIRECTIONS)}, or a list of them.")
    listed = record.is_list(metric)
    if listed and len(names) == len(directions) >= 2 or not listed and len(directions) == 1:
        return
    if listed and len(names) == 1:
        raise ConfigError(
            f"optimized_metric={_listed(names)} is a list of one objective: write "
            f"optimized_metric={names[0]} with one direction, or list two or more objectives.")
    raise ConfigError(
        f"{shown} gives {len(directions)} direction{'s' if len(directions) != 1 else ''} but "
        f"optimized_metric={_listed(names) if listed else names[0]} names {len(names)} "
        f"objective{'s' if len(names) != 1 else ''}: give one direction per objective, "
        f"e.g. hydra.sweeper.direction="
        f"{_listed(['maximize'] * len(names)) if listed else 'maximize'}.")


def _listed(values) -> str:
    """A list as the command line writes it: [maximize,maximize]."""
    return "[" + ",".join(str(v) for v in values) + "]"


class LauncherUnavailable(RuntimeError):
    """The chosen launcher cannot run on this machine; the message is one sentence."""


def check_launcher(launcher, choice: str = "slurm") -> None:
    """A Slurm launcher (`slurm`, `population_slurm`, ...) needs Slurm's commands here."""
    if launchers.is_slurm(launcher):
        missing = [name for name in SLURM_COMMANDS if shutil.which(name) is None]
        if missing:
            raise LauncherUnavailable(
                f"hydra/launcher={choice} needs Slurm, but {' and '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} not on this machine's PATH: start the "
                "sweep on a Slurm login node, or run it here with hydra/launcher=joblib "
                "(or submitit_local).")
