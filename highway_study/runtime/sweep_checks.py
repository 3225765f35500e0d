"""Checks made once before a sweep launches anything, each ending in one sentence.

A Hydra callback (registered in conf/config.yaml under hydra.callbacks, before the progress
callback): `on_multirun_start` runs in the process that starts the sweep, before the
sweeper asks for a trial or the launcher submits a job, so a refusal leaves no half-made
sweep and no trial behind.

- `hydra/launcher=slurm` needs Slurm's commands on this machine (submitit looks for `srun`);
  without them submitit raises deep inside the launcher, so say it here instead.
- An Optuna search needs one direction per objective (`hydra.sweeper.direction` against
  `optimized_metric`): the sweeper would otherwise fail every trial after training it.
- An Optuna search may only add trials to a study of the same search (see study_guard).
"""

from __future__ import annotations

import shutil
import sys

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from highway_study import record
from highway_study.config import ConfigError
from highway_study.runtime.storage import StorageError
from highway_study.runtime.study_guard import StudyMismatch, check_study
from highway_study.runtime import launchers

SLURM_COMMANDS = ("srun", "sbatch")
DIRECTIONS = ("minimize", "maximize")


class SweepChecks(Callback):
    def on_multirun_start(self, config, **kwargs) -> None:
        try:
            check_launcher(config.hydra.launcher,
                           config.hydra.runtime.choices.get("hydra/launcher", "slurm"))
            check_objectives(config)
            check_study(config)
        except ConfigError as error:
            print(f"Invalid config: {error}", file=sys.stderr)
            sys.exit(2)
        except (LauncherUnavailable, StudyMismatch, StorageError) as error:
            print(error, file=sys.stderr)
            sys.exit(2)


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
