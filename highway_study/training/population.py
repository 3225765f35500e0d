"""What the population launcher asks of training: which runs can train together, and
where a run folder would resume.

A population is the engine's ordinary input (training.engine): runs whose configs share
`shape_key` train as one batched computation, each with its own record.
"""

from __future__ import annotations

from highway_study.training import checkpoint
from highway_study.training.engine import MEMBER_KEYS, shape_key, train_members

__all__ = ["MEMBER_KEYS", "resume_epoch", "shape_key", "train_population"]


def resume_epoch(run_dir) -> int:
    """The epoch a run folder resumes from (0: a fresh start): runs that train together
    start from the same one."""
    return checkpoint.latest_epoch(run_dir)


def train_population(configs, run_dirs, should_stop=None, groups=None):
    """Train runs of one shape together; their summaries (training.engine.train_members)."""
    return train_members(configs, run_dirs, should_stop=should_stop, groups=groups)
