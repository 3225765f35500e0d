"""Train configurations: data -> models -> the one training loop -> run records.

`train(cfg, run_dir)` trains one configuration: a population of one in the engine
(training.engine), exactly as a member of a larger population trains. It is a plain
function: no signal handlers, no sys.exit, no process-wide state beyond TensorFlow's own.
It resumes from the run folder's checkpoint when there is one, writes metrics.jsonl as
epochs end and summary.json at the end, and returns the Summary. Asked to stop
(`should_stop` returns True between steps) it raises `Interrupted`; the caller decides what
that means for the process.
"""

from __future__ import annotations

from typing import Callable

from highway_study import record
from highway_study.training.engine import (
    GATE_BATCH,
    Interrupted,
    seed_everything,
    shape_key,
    total_steps,
    train_members,
)

__all__ = ["GATE_BATCH", "Interrupted", "seed_everything", "shape_key", "total_steps",
           "train", "train_members"]


def train(cfg, run_dir, verbose: bool = True,
          should_stop: Callable[[], bool] | None = None) -> record.Summary:
    """Train the configured model, write its run record and return the summary.

    A run folder with a checkpoint resumes from it and trains exactly as the uninterrupted
    run would have (data order and random state come from the seed and the epoch);
    `wall_seconds` adds up every attempt's time.
    """
    return train_members([cfg], [run_dir], should_stop=should_stop, verbose=verbose)[0]
