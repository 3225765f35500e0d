"""The step-resolution curve: when a point is due, and what goes into it.

`StepRecorder` knows nothing about Keras: whoever runs the optimizer calls `start()` once,
`after_step(loss, examples)` after every optimizer step and `finish()` at the end; the
recorder writes a point to curve.jsonl at step 0, at every multiple of `every` and at the
last step. What a point measures (validation loss and accuracy, learning rate, gate
activity) comes from the `measure` function it is given, so a batched trainer that runs
many configurations without fit() can reuse it with its own measurement.

A point: `step`, `train_loss` (mean cross-entropy per example over the steps since the
previous point; null at step 0), `val_loss`, `val_accuracy`, `learning_rate`,
`gate_activity` (mean transform gate per highway layer), `seconds` (since this training
segment started, recording included) and `recording_seconds` (what measuring it took).
"""

from __future__ import annotations

import time
from typing import Callable, Iterable

from highway_study import convergence, record


def resume_points(run_dir, step: int) -> list[dict]:
    """The points of curve.jsonl up to `step` (where training resumes); the file is cut back
    to them, so no point past the checkpoint stays recorded twice. A fresh start (step 0)
    empties it."""
    points = [p for p in record.read_curve(run_dir) if 0 < step and p.get("step", 0) <= step]
    record.rewrite_curve(run_dir, points)
    return points


class StepRecorder:
    """Records a point every `every` optimizer steps (and at the first and last step)."""

    def __init__(self, run_dir, every: int, measure: Callable[[], dict],
                 points: Iterable[dict] = (), listeners: Iterable[Callable[[dict], None]] = (),
                 step: int | None = None):
        """`points`: those recorded before a resume; `step`: where training resumes (by
        default the last point's step; a checkpoint usually lies between two points)."""
        if every < 1:
            raise ValueError(f"StepRecorder every={every}: use an integer >= 1.")
        self.run_dir = run_dir
        self.every = every
        self.measure = measure
        self.listeners = list(listeners)
        self.points: list[dict] = list(points)  # those before a resume included
        if step is None:
            step = self.points[-1]["step"] if self.points else 0
        self.step = step
        self.recording_seconds = 0.0
        # The steps since the last point (kept in a checkpoint, so that the first point
        # after a resume averages the same steps as the uninterrupted run's).
        self.loss_sum = 0.0
        self.examples = 0
        self._started = time.perf_counter()

    def start(self) -> dict | None:
        """Record the untrained net (step 0) unless the curve already has points."""
        self._started = time.perf_counter()
        return None if self.points else self._record()

    def after_step(self, loss: float, examples: int = 1) -> dict | None:
        """Count one optimizer step whose mean loss over `examples` examples was `loss`;
        record a point (and return it) when one is due."""
        self.step += 1
        self.loss_sum += float(loss) * examples
        self.examples += examples
        if self.step % self.every == 0:
            return self._record()
        return None

    def finish(self) -> dict | None:
        """Record the last step if it did not fall on the grid of `every` steps."""
        if self.points and self.points[-1]["step"] == self.step:
            return None
        return self._record()

    def _record(self) -> dict:
        begin = time.perf_counter()
        point = {"step": self.step,
                 "train_loss": self.loss_sum / self.examples if self.examples else None}
        point.update(self.measure())
        measured = time.perf_counter()
        point["seconds"] = measured - self._started
        point["recording_seconds"] = measured - begin
        record.append_point(self.run_dir, point)
        self.points.append(point)
        self.loss_sum, self.examples = 0.0, 0
        for listener in self.listeners:
            listener(point)
        self.recording_seconds += time.perf_counter() - begin  # writing and listeners too
        return point


def val_subset_size(cfg, dataset) -> int:
    """Validation examples measured at each point (`eval_examples`, at most all of them)."""
    total = len(dataset.x_val)
    return total if cfg.eval_examples is None else min(cfg.eval_examples, total)


def summary_fields(cfg, recorder: StepRecorder, dataset) -> dict:
    """The summary's step-resolution fields, from the recorded points."""
    thresholds = (*convergence.THRESHOLDS, cfg.threshold)
    return dict(
        convergence.summarize(recorder.points, 1 / dataset.num_classes, thresholds),
        eval_every=cfg.eval_every,
        curve_val_examples=val_subset_size(cfg, dataset),
        recording_seconds=recorder.recording_seconds,
    )
