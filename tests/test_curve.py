"""The step-resolution curve: points every eval_every steps, their fields, the summary's
step fields, TensorBoard, resuming, and the recorder without Keras."""

from __future__ import annotations

import io
import json
import math

import pytest

from compose import compose_config
from highway_study import record
from highway_study.training import train
from highway_study.training.curve import StepRecorder, resume_points
from highway_study.training.progress import RunProgress

# 400 training examples at batch 32: 13 steps per epoch (12 of 32, one of 16).
FAST = ("data=synthetic", "depth=3", "width=16", "epochs=2", "batch_size=32")
POINT_KEYS = {"step", "train_loss", "val_loss", "val_accuracy", "learning_rate",
              "gate_activity", "seconds", "recording_seconds"}


def test_eval_every_10_records_step_0_every_10_steps_and_the_last(tmp_path):
    cfg = compose_config(*FAST, "eval_every=10", "eval_examples=60")
    summary = train(cfg, tmp_path, verbose=False)
    points = record.read_curve(tmp_path)
    assert [p["step"] for p in points] == [0, 10, 20, 26]  # 26 = 2 epochs of 13 steps
    assert all(set(p) == POINT_KEYS for p in points)
    assert points[0]["train_loss"] is None and all(p["train_loss"] > 0 for p in points[1:])
    assert all(len(p["gate_activity"]) == 3 for p in points)
    # the default schedule decays the rate from 0.05 along a cosine to 0 at the last step
    rates = [p["learning_rate"] for p in points]
    assert rates[0] == pytest.approx(0.05) and rates[-1] == pytest.approx(0.0, abs=1e-6)
    assert rates[1] == pytest.approx(0.025 * (1 + math.cos(math.pi * 10 / 26)), rel=1e-5)
    assert summary.eval_every == 10 and summary.curve_val_examples == 60
    assert set(summary.steps_to) == {"0.5", "0.9", "0.95"}
    assert 0.0 <= summary.curve_area <= 1.0 and summary.stalled is None  # < 1000 steps
    assert summary.gate_shift > 0 and summary.recording_seconds > 0
    # the per-epoch rows keep their meaning: one per epoch, full validation set
    assert [row["epoch"] for row in record.read_metrics(tmp_path)] == [1, 2]
    written = json.loads((tmp_path / record.SUMMARY_FILE).read_text())
    assert written["steps_to"] == summary.steps_to and written["curve_area"] == summary.curve_area


def test_points_at_epoch_ends_agree_with_the_epoch_rows(tmp_path):
    # eval_every = one epoch and the whole validation set: each point measures what the
    # epoch row does, so the training loss averaged between points is the epoch's.
    cfg = compose_config(*FAST, "eval_every=13", "eval_examples=null", "tensorboard=false")
    train(cfg, tmp_path, verbose=False)
    points = record.read_curve(tmp_path)[1:]
    rows = record.read_metrics(tmp_path)
    assert [p["step"] for p in points] == [row["step"] for row in rows] == [13, 26]
    for point, row in zip(points, rows):
        assert math.isclose(point["train_loss"], row["train_loss"], rel_tol=1e-4)
        assert math.isclose(point["val_loss"], row["val_loss"], rel_tol=1e-4)
        assert point["val_accuracy"] == pytest.approx(row["val_accuracy"])
        assert point["gate_activity"] == pytest.approx(row["gate_activity"])


def test_recording_points_does_not_change_what_the_run_learns(tmp_path):
    args = (*FAST, "tensorboard=false")
    off = train(compose_config(*args, "eval_every=0"), tmp_path / "off", verbose=False)
    on = train(compose_config(*args, "eval_every=3"), tmp_path / "on", verbose=False)
    assert on.test_loss == off.test_loss
    assert not (tmp_path / "off" / record.CURVE_FILE).exists() and off.steps_to is None


def test_points_reach_tensorboard_with_the_step_on_the_x_axis(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(compose_config(*FAST, "eval_every=10"), tmp_path, verbose=False)
    events = EventAccumulator(str(tmp_path / "tensorboard" / "steps")).Reload()
    for tag in ("val_accuracy", "train_loss", "learning_rate", "gate_activity/mean",
                "gate_activity/all_layers"):
        assert tag in events.Tags()["tensors"]
    assert [e.step for e in events.Tensors("val_accuracy")] == [0, 10, 20, 26]


def test_step_recorder_runs_without_keras_and_averages_the_loss_between_points(tmp_path):
    measured = iter(range(100))
    recorder = StepRecorder(tmp_path, every=2,
                            measure=lambda: {"val_accuracy": next(measured) / 100})
    recorder.start()
    for loss, examples in [(1.0, 10), (4.0, 30), (2.0, 5)]:
        recorder.after_step(loss, examples)
    recorder.finish()
    recorder.finish()  # the last step is recorded once
    points = record.read_curve(tmp_path)
    assert [p["step"] for p in points] == [0, 2, 3]
    assert [p["train_loss"] for p in points] == [None, (1.0 * 10 + 4.0 * 30) / 40, 2.0]
    assert [p["val_accuracy"] for p in points] == [0.0, 0.01, 0.02]


def test_a_resume_cuts_the_curve_back_to_the_checkpoint_and_goes_on_from_there(tmp_path):
    for step in (0, 10, 20, 30):
        record.append_point(tmp_path, {"step": step, "val_accuracy": 0.5})
    points = resume_points(tmp_path, 25)  # the checkpoint lies between two points
    assert [p["step"] for p in record.read_curve(tmp_path)] == [0, 10, 20]
    recorder = StepRecorder(tmp_path, every=10, measure=dict, points=points, step=25)
    assert recorder.start() is None  # a resumed curve has its step 0 already
    for _ in range(10):
        recorder.after_step(1.0)
    assert [p["step"] for p in record.read_curve(tmp_path)] == [0, 10, 20, 30]
    assert record.read_curve(tmp_path)[-1]["train_loss"] == 1.0  # over the 5 steps since 25
    assert resume_points(tmp_path, 0) == [] and record.read_curve(tmp_path) == []


def test_progress_display_shows_steps_rate_time_left_and_validation_accuracy():
    stream = io.StringIO()
    with RunProgress(total=40, initial=10, enabled=True, file=stream) as progress:
        progress.advance(5)
        progress.show_accuracy(0.931)
        progress.advance(5)
    text = stream.getvalue()
    assert "20/40" in text and "step/s" in text and "val acc 93.1%" in text
    assert "<" in text  # tqdm's elapsed<remaining


def test_progress_display_is_silent_when_off():
    stream = io.StringIO()
    with RunProgress(total=40, enabled=False, file=stream) as progress:
        progress.advance(40)
    assert stream.getvalue() == ""


def test_a_sweep_job_trains_without_the_progress_bar(tmp_path, monkeypatch):
    # A sweep's runs (joblib, submitit, Optuna) keep to the sweep's one line per run: the
    # runtime trains them with verbose=False, which turns the bar off even on a terminal.
    from highway_study.runtime.job import run_job
    from highway_study.training import engine

    shown = []

    class Recording(RunProgress):
        def __init__(self, total, initial=0, enabled=None, file=None):
            shown.append(enabled)
            super().__init__(total, initial, enabled, io.StringIO())

    monkeypatch.setattr(engine, "RunProgress", Recording)
    cfg = compose_config(*FAST, "epochs=1", "tensorboard=false")
    run_job(cfg, tmp_path / "sweep_job", multirun=True)
    train(cfg, tmp_path / "single", verbose=True)
    assert shown == [False, None]  # off in a sweep; a single run shows it on a terminal


def test_a_cosine_schedule_needs_the_runs_length():
    from highway_study.training.optim import make_optimizer

    with pytest.raises(ValueError, match="total steps"):
        make_optimizer(compose_config().optimizer)
    rate = make_optimizer(compose_config().optimizer, total_steps=10).learning_rate
    assert float(rate) == pytest.approx(0.05)  # at step 0
