"""One process per run folder, and one sweep per sweep folder: locks held while they work.

The same command started twice, or two sweeps into one folder, would otherwise append every
epoch twice to metrics.jsonl, fight over the checkpoint and mix their counts in
progress.jsonl. The locks are the operating system's (filelock's FileLock: flock on POSIX),
so a lock is held only while its process lives: a lock file left by a killed process is
stale and harmless, and the next run takes it over. A process that ends normally removes its
lock file while it still holds the lock, so a finished folder holds only its results;
filelock (4.x) notices a file removed under a waiting peer and takes a fresh one.
"""

from __future__ import annotations

from contextlib import contextmanager, suppress
from pathlib import Path

from filelock import FileLock, Timeout

LOCK_FILE = ".run.lock"
SWEEP_LOCK_FILE = ".sweep.lock"
RETAKE_SECONDS = 0.5


class RunLocked(RuntimeError):
    """Another live process works in the run folder; the message is one sentence."""


class _FolderLock(FileLock):
    """A FileLock whose last release removes its file first, while still held."""

    def release(self, force: bool = False) -> None:
        if self.is_locked and (force or self.lock_counter == 1):
            with suppress(OSError):  # a tidy folder is a nicety: never fail a finished run
                Path(self.lock_file).unlink(missing_ok=True)
        super().release(force=force)


def _take(folder: Path, name: str) -> FileLock | None:
    """The lock file `name` in `folder` (made if missing), taken at once; None when another
    live process holds it. A short wait covers a peer removing the file as it ends."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = _FolderLock(str(folder / name), timeout=RETAKE_SECONDS)
    try:
        lock.acquire()
    except Timeout:
        return None
    return lock


@contextmanager
def run_lock(run_dir):
    """Hold the run folder's lock for the `with` block; RunLocked when another process has it."""
    run_dir = Path(run_dir)
    lock = _take(run_dir, LOCK_FILE)
    if lock is None:
        raise RunLocked(
            f"{run_dir} is in use by another process that is still running: wait for it to "
            "end, or run into another folder (hydra.run.dir or hydra.sweep.dir)."
        )
    try:
        yield
    finally:
        lock.release()


def sweep_lock(sweep_dir) -> FileLock:
    """Take the sweep folder's lock for a whole sweep (the caller releases it at the sweep's
    end; a crash releases it with the process); RunLocked when another sweep holds it."""
    sweep_dir = Path(sweep_dir)
    lock = _take(sweep_dir, SWEEP_LOCK_FILE)
    if lock is None:
        raise RunLocked(
            f"hydra.sweep.dir={sweep_dir} is in use by another sweep that is still running: "
            "wait for it to end, or give this sweep another folder "
            f"(e.g. hydra.sweep.dir={str(sweep_dir).rstrip('/')}_2).")
    return lock
