"""SIGTERM and Ctrl-C as a request to stop, which training honours at its next safe point.

Schedulers and `kill` send SIGTERM; a person presses Ctrl-C. Either one asks the run to
stop between two optimizer steps (no metrics line or checkpoint is ever half written); a
second one stops at once. The exit code follows the shell's convention, 128 + the signal.
"""

from __future__ import annotations

import logging
import signal

log = logging.getLogger("highway_study")
_NAMES = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "Ctrl-C"}


class StopRequests:
    """`with StopRequests() as stop:` installs the handlers; `stop()` says whether a stop
    was asked for (pass it to training as `should_stop`). Outside the main thread, where
    Python allows no handlers, nothing is installed and `stop()` stays False."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict = {}

    def __call__(self) -> bool:
        return self.signum is not None

    def __enter__(self) -> StopRequests:
        try:
            self._previous = {sig: signal.signal(sig, self._on_signal) for sig in _NAMES}
        except ValueError:  # not the main thread
            self._previous = {}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum, frame):
        if self.signum is not None:  # asked twice: stop now
            raise KeyboardInterrupt(_NAMES[signum])
        self.signum = signum
        log.warning("%s received: stopping after this step (again to stop at once)",
                    _NAMES[signum])

    @property
    def name(self) -> str:
        return _NAMES.get(self.signum, "Ctrl-C")

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)
