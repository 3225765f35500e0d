"""Skip finished runs, resume unfinished ones, and turn SIGTERM into a clean interrupt.

Rerunning a sweep into the same folder (`hydra.sweep.dir=...`) therefore costs nothing for
the runs that already finished, and an interrupted run goes on from its last finished epoch:
- a run whose summary says `completed` or `diverged` is a result: it is not trained again and
  its recorded objective is returned (`diverged` would only diverge again);
- any other run (no summary, `interrupted`, `failed`) trains, starting from the per-epoch
  checkpoint in `<run>/checkpoint/` when there is one; metrics.jsonl is cut back to the
  checkpoint's epoch so no epoch is ever recorded twice;
- SIGTERM (what schedulers and `kill` send) and Ctrl-C stop training at the end of the current
  step and end with a summary of status `interrupted` (written by runner.run_once).

The checkpoint is Keras's BackupAndRestore (weights + optimizer state, one file overwritten
every epoch); it is deleted when training ends.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
from pathlib import Path

from omegaconf import OmegaConf

from highway_study import records

log = logging.getLogger("highway_study")

FINISHED = ("completed", "diverged")
CHECKPOINT_DIR = "checkpoint"
_CHECKPOINT_STATE = "training_metadata.json"  # BackupAndRestore's record of the saved epoch


class ConfigChanged(RuntimeError):
    """The run folder holds a finished run of another config; the message is one sentence."""


def recorded_objective(run_dir, cfg) -> float | None:
    """The objective of the finished run in `run_dir`, or None when it has to be trained.

    Raises ConfigChanged when the finished run used a different config, so that it is
    neither overwritten nor silently reported for the new config.
    """
    summary = records.read_summary(run_dir)
    if summary is None or summary.get("status") not in FINISHED:
        return None
    current = json.loads(json.dumps(OmegaConf.to_container(cfg, resolve=True)))
    changed = sorted(_changed_keys(summary.get("config") or {}, current))
    if changed:
        raise ConfigChanged(
            f"{run_dir} already holds a finished run whose config differs in "
            f"{', '.join(changed)}: rerun into a new hydra.sweep.dir (or delete that folder)."
        )
    from highway_study.train import objective

    return objective(summary)


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


def checkpoint_dir(run_dir) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def checkpoint_callback(run_dir):
    """Keras's BackupAndRestore: saves every epoch, restores in fit(), deletes at the end."""
    import keras

    return keras.callbacks.BackupAndRestore(
        str(checkpoint_dir(run_dir)), save_freq="epoch", delete_checkpoint=True)


def saved_epoch(run_dir) -> int:
    """The number of epochs the checkpoint holds (0 when there is none)."""
    state = checkpoint_dir(run_dir) / _CHECKPOINT_STATE
    if not state.exists():
        return 0
    try:
        return int(json.loads(state.read_text(encoding="utf-8"))["epoch"])
    except (ValueError, KeyError, TypeError):
        return 0


def restore_history(run_dir) -> list[dict]:
    """The metrics rows of the epochs the checkpoint holds; metrics.jsonl is cut back to them.

    Rows past the checkpoint (an epoch recorded just before a kill, but not saved) are
    dropped, because fit() will train that epoch again.
    """
    epoch = saved_epoch(run_dir)
    rows = [row for row in records.read_metrics(run_dir) if row.get("epoch", 0) <= epoch]
    if len(rows) != epoch:  # the checkpoint and the record disagree: start over
        epoch, rows = 0, []
        with contextlib.suppress(FileNotFoundError):
            for path in checkpoint_dir(run_dir).iterdir():
                path.unlink()
    records.rewrite_metrics(run_dir, rows)
    if epoch:
        log.info("resuming %s after epoch %d", Path(run_dir).name, epoch)
    return rows


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered like Ctrl-C so that the same handlers record it."""


class _SignalState:
    defer = False  # True inside fit(): a signal waits for the end of the current step
    pending: int | None = None


_STATE = _SignalState()


def _interrupt(signum: int) -> KeyboardInterrupt:
    return Terminated("SIGTERM") if signum == signal.SIGTERM else KeyboardInterrupt("SIGINT")


def _on_signal(signum, frame):
    if _STATE.defer:
        _STATE.pending = signum
        log.warning("%s received: stopping after this step", signal.Signals(signum).name)
        return
    raise _interrupt(signum)


@contextlib.contextmanager
def interrupts_recorded():
    """Within the block SIGTERM and Ctrl-C raise KeyboardInterrupt (Terminated for SIGTERM).

    During fit() they only set a flag that `interrupt_callback` turns into the exception
    between steps, so that no metrics line or checkpoint is ever half written.
    """
    _STATE.defer, _STATE.pending = False, None
    try:
        previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        _STATE.defer = False
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def pending_interrupt() -> KeyboardInterrupt | None:
    """A signal that arrived after the last epoch (the run finished; the sweep should stop)."""
    return None if _STATE.pending is None else _interrupt(_STATE.pending)


def interrupt_callback():
    """A Keras callback raising a deferred interrupt at the next safe point of fit()."""
    import keras

    class StopAtSafePoint(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            _STATE.defer = True

        def on_train_batch_end(self, batch, logs=None):
            self._check()

        def on_epoch_begin(self, epoch, logs=None):  # every callback has ended the last epoch
            self._check()

        def on_train_end(self, logs=None):
            _STATE.defer = False

        def _check(self):
            if _STATE.pending is not None:
                _STATE.defer = False
                raise _interrupt(_STATE.pending)

    return StopAtSafePoint()


def exit_code(interrupt: BaseException) -> int:
    """The shell's convention: 128 + the signal's number."""
    return 128 + (signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT)


def record_interruption(run_dir, cfg, interrupt: BaseException) -> str:
    """Write summary.json with status `interrupted` from the epochs on disk; return the message."""
    rows = records.read_metrics(run_dir)
    why = "SIGTERM" if isinstance(interrupt, Terminated) else "Ctrl-C"
    message = (f"{run_dir}: interrupted by {why} after epoch {len(rows)}; rerun the same command "
               "with this folder as hydra.run.dir (or its sweep's hydra.sweep.dir) to resume.")
    records.write_summary(run_dir, {
        "status": "interrupted",
        "error": message,
        **records.progress(rows),
        "config": OmegaConf.to_container(cfg, resolve=True),
    })
    return message
