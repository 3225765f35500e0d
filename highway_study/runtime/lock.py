"""One process per run folder: a lock held while a job works in it.

The same command started twice, or two sweeps into one folder, would otherwise append every
epoch twice to metrics.jsonl and fight over the checkpoint. The lock is the operating
system's (filelock's FileLock: flock on POSIX), so it is held only while its process lives:
a lock file left by a killed process is stale, and the next run takes it over.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

LOCK_FILE = ".run.lock"


class RunLocked(RuntimeError):
    """Another live process works in the run folder; the message is one sentence."""


@contextmanager
def run_lock(run_dir):
    """Hold the run folder's lock for the `with` block; RunLocked when another process has it."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(run_dir / LOCK_FILE), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise RunLocked(
            f"{run_dir} is in use by another process that is still running: wait for it to "
            "end, or run into another folder (hydra.run.dir or hydra.sweep.dir)."
        ) from None
    try:
        yield
    finally:
        lock.release()
