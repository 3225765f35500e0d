"""Checks made once before a sweep launches anything, each ending in one sentence.

A Hydra callback (registered in conf/config.yaml under hydra.callbacks, before the progress
callback): `on_multirun_start` runs in the process that starts the sweep, before the
sweeper asks for a trial or the launcher submits a job, so a refusal leaves no half-made
sweep and no trial behind.

- `hydra/launcher=slurm` needs Slurm's commands on this machine (submitit looks for `srun`);
  without them submitit raises deep inside the launcher, so say it here instead.
- An Optuna search may only add trials to a study of the same search (see study_guard).
"""

from __future__ import annotations

import shutil
import sys

from hydra.experimental.callback import Callback

from highway_study.runtime.storage import StorageError
from highway_study.runtime.study_guard import StudyMismatch, check_study

SLURM_COMMANDS = ("srun", "sbatch")


class SweepChecks(Callback):
    def on_multirun_start(self, config, **kwargs) -> None:
        try:
            check_launcher(config.hydra.launcher,
                           config.hydra.runtime.choices.get("hydra/launcher", "slurm"))
            check_study(config)
        except (LauncherUnavailable, StudyMismatch, StorageError) as error:
            print(error, file=sys.stderr)
            sys.exit(2)


class LauncherUnavailable(RuntimeError):
    """The chosen launcher cannot run on this machine; the message is one sentence."""


def check_launcher(launcher, choice: str = "slurm") -> None:
    """A Slurm launcher (`slurm`, `population_slurm`, ...) needs Slurm's commands here."""
    target = str(launcher.get("_target_", ""))
    if target.endswith("SlurmLauncher"):
        missing = [name for name in SLURM_COMMANDS if shutil.which(name) is None]
        if missing:
            raise LauncherUnavailable(
                f"hydra/launcher={choice} needs Slurm, but {' and '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} not on this machine's PATH: start the "
                "sweep on a Slurm login node, or run it here with hydra/launcher=joblib "
                "(or submitit_local).")
