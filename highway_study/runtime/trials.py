"""Optuna trials that never stay RUNNING once the process that asked for them is gone.

Hydra's Optuna sweeper asks the study for a trial and tells it the result; a worker that is
stopped in between (SIGTERM, Ctrl-C, a crash, a lost machine) would leave the trial RUNNING
forever, counted by no one. This storage keeps two guards:
- at exit (the sys.exit that follows SIGTERM or Ctrl-C, an exception), it marks FAIL every
  trial this process asked for that is still RUNNING;
- while a trial runs, a daemon thread records Optuna's heartbeat for it every
  `heartbeat_seconds`; before any worker asks for a new trial, trials whose heartbeat is
  older than twice that (a process killed with -9, a machine gone) are marked FAIL.
"""

from __future__ import annotations

import atexit
import logging
import threading

from optuna.storages import RDBStorage
from optuna.trial import TrialState

log = logging.getLogger("highway_study")


class TrialKeepingStorage(RDBStorage):
    """optuna.storages.RDBStorage that fails its own unfinished trials and stale ones."""

    def __init__(self, url: str, heartbeat_seconds: int = 60, **kwargs):
        super().__init__(url, heartbeat_interval=heartbeat_seconds, **kwargs)
        self._mine: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beating = False
        atexit.register(self.fail_unfinished)

    def _create_new_trial(self, study_id, template_trial=None):
        stale = self.fail_stale_trials(study_id)
        if stale:
            log.warning("Optuna trial ids %s had no heartbeat for %d s (their worker is gone): "
                        "marked FAIL", stale, 2 * self.heartbeat_interval)
        trial = super()._create_new_trial(study_id, template_trial)
        self.record_heartbeat(trial._trial_id)
        with self._lock:
            self._mine.add(trial._trial_id)
            if not self._beating:
                self._beating = True
                threading.Thread(target=self._beat, name="optuna-heartbeat", daemon=True).start()
        return trial

    def _running_mine(self) -> list[int]:
        with self._lock:
            mine = sorted(self._mine)
        running = []
        for trial_id in mine:
            if self.get_trial(trial_id).state == TrialState.RUNNING:
                running.append(trial_id)
            else:
                with self._lock:
                    self._mine.discard(trial_id)
        return running

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_interval):
            try:
                for trial_id in self._running_mine():
                    self.record_heartbeat(trial_id)
            except Exception as error:  # noqa: BLE001 - a missed beat must not kill the sweep
                log.debug("Optuna heartbeat failed: %s", error)

    def fail_unfinished(self) -> None:
        """Mark FAIL this process's trials that are still RUNNING (called at exit)."""
        self._stop.set()
        try:
            for trial_id in self._running_mine():
                self.set_trial_state(trial_id, TrialState.FAIL)
                log.warning("Optuna trial id %d did not finish in this process: marked FAIL",
                            trial_id)
        except Exception as error:  # noqa: BLE001 - at exit, say it and go on
            log.warning("could not mark this process's unfinished Optuna trials FAIL: %s", error)
