"""The progress display inside one run: steps done of the total, steps/s, time left and the
last validation accuracy, as a tqdm bar on stderr.

A sweep shows one line per finished run instead (highway_study.runtime.progress); its runs
train with the bar off, so parallel jobs never interleave bars. `enabled=None` shows the
bar only on a terminal, so a log file gets the per-epoch lines and no bar updates. While
the bar is up, log lines go through tqdm.write and print above it.
"""

from __future__ import annotations

import contextlib
import math

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm


class RunProgress:
    """A tqdm bar over a run's optimizer steps; use as a context manager around training."""

    def __init__(self, total: int, initial: int = 0, enabled: bool | None = None, file=None):
        self.bar = tqdm(total=total, initial=initial, unit="step", desc="training",
                        disable=None if enabled is None else not enabled, file=file,
                        dynamic_ncols=True, mininterval=0.5, smoothing=0.1)
        self._console = contextlib.ExitStack()

    @property
    def enabled(self) -> bool:
        return not self.bar.disable

    def advance(self, steps: int = 1) -> None:
        self.bar.update(steps)

    def show_accuracy(self, accuracy) -> None:
        """Show the last validation accuracy beside the bar."""
        if accuracy is None or not math.isfinite(accuracy):
            text = "val acc n/a"
        else:
            text = f"val acc {100 * accuracy:.1f}%"
        self.bar.set_postfix_str(text, refresh=False)

    def __enter__(self) -> RunProgress:
        if self.enabled:
            self._console.enter_context(logging_redirect_tqdm())
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()
        self._console.close()
