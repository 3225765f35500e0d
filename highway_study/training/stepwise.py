"""Wiring the step-resolution curve into a fit() run: its recorder, and what the summary
says about it. The rules live in highway_study.convergence, the point logic in
training.curve, the Keras measurement in training.recorder."""

from __future__ import annotations

from highway_study import convergence
from highway_study.training.curve import StepRecorder, resume_points
from highway_study.training.recorder import PointProbe, TensorBoardPoints


def val_subset_size(cfg, dataset) -> int:
    """Validation examples measured at each point (`eval_examples`, at most all of them)."""
    total = len(dataset.x_val)
    return total if cfg.eval_examples is None else min(cfg.eval_examples, total)


def recorder_for(cfg, run_dir, model, dataset, step: int, gate_batch, tensorboard_dir=None):
    """The run's StepRecorder resumed at `step` (None with eval_every=0); curve.jsonl is cut
    back to `step` either way."""
    points = resume_points(run_dir, step)
    if not cfg.eval_every:
        return None
    size = val_subset_size(cfg, dataset)
    probe = PointProbe(model, dataset.x_val[:size], dataset.y_val[:size], gate_batch)
    listeners = [TensorBoardPoints(tensorboard_dir / "steps")] if tensorboard_dir else []
    return StepRecorder(run_dir, cfg.eval_every, probe, points=points, listeners=listeners,
                        step=step)


def summary_fields(cfg, recorder: StepRecorder, dataset) -> dict:
    """The summary's step-resolution fields, from the recorded points."""
    thresholds = (*convergence.THRESHOLDS, cfg.threshold)
    return dict(
        convergence.summarize(recorder.points, 1 / dataset.num_classes, thresholds),
        eval_every=cfg.eval_every,
        curve_val_examples=val_subset_size(cfg, dataset),
        recording_seconds=recorder.recording_seconds,
    )
