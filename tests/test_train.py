"""Training end to end: run records, divergence, repeatability, real MNIST."""

import json
import math

import pytest

from compose import compose_config
from faults import fault
from highway_study import record
from highway_study.record import objective
from highway_study.runtime.job import run_job
from highway_study.training import Interrupted, train

FAST = ("data=synthetic", "depth=3", "width=16", "epochs=2", "batch_size=32")


def test_cli_run_writes_complete_run_record(run_cli, tmp_path):
    result = run_cli(*FAST, f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    assert "epoch   2" in result.stdout  # a progress line per epoch in a single run
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    row = json.loads(lines[-1])
    assert set(row) >= {"epoch", "step", "train_loss", "train_accuracy", "val_loss",
                        "val_accuracy", "learning_rate", "seconds", "gate_activity"}
    assert len(row["gate_activity"]) == 3 and row["step"] == 2 * math.ceil(400 / 32)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["schema"] == record.SCHEMA and summary["status"] == "completed"
    assert summary["config"]["depth"] == 3 and summary["epochs"] == 2
    assert 0.0 <= summary["test_accuracy"] <= 1.0 and summary["params"] > 0
    assert summary["data_source"] == "generated Gaussian clusters (seed 0)"  # what was read
    assert "data: generated Gaussian clusters (seed 0)" in result.stdout + result.stderr
    assert list((tmp_path / "tensorboard").rglob("events.out.tfevents.*"))
    assert (tmp_path / ".hydra" / "config.yaml").exists()
    assert not (tmp_path / ".run.lock").exists()  # a finished folder holds its results only


def test_training_learns_synthetic_data_and_records_threshold(tmp_path):
    cfg = compose_config("data=synthetic", "depth=2", "width=32", "epochs=8",
                         "batch_size=16", "tensorboard=false", "threshold=0.8")
    summary = train(cfg, tmp_path, verbose=False)
    assert summary.best_val_accuracy > 0.8 and summary.test_accuracy > 0.7
    first = next(r for r in record.read_metrics(tmp_path) if r["val_accuracy"] >= 0.8)
    assert summary.epochs_to_threshold == first["epoch"]
    assert not (tmp_path / "tensorboard").exists()
    assert objective(summary) == summary.best_val_accuracy


def test_same_seed_repeats_exactly_and_other_seed_differs(tmp_path):
    args = ("data=synthetic", "depth=2", "width=8", "epochs=1", "tensorboard=false")
    runs = [train(compose_config(*args, f"seed={seed}"), tmp_path / f"{i}", verbose=False)
            for i, seed in enumerate([5, 5, 6])]
    assert runs[0].test_loss == runs[1].test_loss
    assert runs[0].test_loss != runs[2].test_loss


@fault("a learning rate so large that the loss becomes NaN", "`python -m highway_study optimizer.learning_rate=1e12`",
       "the run stops with status `diverged`, NaN written as null, objective 0 (a sweep goes on)")
def test_huge_learning_rate_diverges_with_finite_objective(tmp_path):
    cfg = compose_config(*FAST, "optimizer.learning_rate=1e12", "epochs=3", "tensorboard=false")
    summary = train(cfg, tmp_path, verbose=False)
    assert summary.status == "diverged" and summary.test_accuracy is None
    assert summary.epochs == 1  # stopped early
    assert objective(summary) == 0.0
    json.loads((tmp_path / "summary.json").read_text())  # NaN written as valid JSON


def test_max_steps_stops_mid_epoch(tmp_path):
    cfg = compose_config(*FAST, "max_steps=15", "tensorboard=false")
    summary = train(cfg, tmp_path, verbose=False)
    assert summary.steps == 15 and summary.epochs == 2  # 13 steps per epoch


def test_blog_setup_trains_with_summed_loss(tmp_path):
    cfg = compose_config("setup=blog", "data=synthetic", "depth=2", "max_steps=20",
                         "tensorboard=false")
    summary = train(cfg, tmp_path, verbose=False)
    assert summary.status == "completed" and summary.steps == 20


def test_lesion_results_land_in_the_summary(tmp_path):
    cfg = compose_config(*FAST, "lesion_every=2", "tensorboard=false")
    summary = train(cfg, tmp_path, verbose=False)
    assert [row["layer"] for row in summary.lesion] == [0, 2]


def test_real_mnist_smoke_depth_2_highway(mnist_root, tmp_path, monkeypatch):
    monkeypatch.setenv("HIGHWAY_STUDY_DATA", str(mnist_root))
    cfg = compose_config("data=mnist", "data.train_limit=6000", "depth=2", "epochs=1",
                         "batch_size=64", "tensorboard=false")
    summary = train(cfg, tmp_path, verbose=False)
    assert summary.status == "completed"
    assert summary.test_accuracy > 0.6  # chance is 0.1
    assert summary.data_source == str(mnist_root / "mnist")  # the record names the folder read


def test_patience_stops_when_validation_accuracy_stalls(tmp_path):
    # A zero learning rate never improves validation accuracy: stop after 1 + patience epochs.
    cfg = compose_config(*FAST, "epochs=10", "patience=2", "optimizer.learning_rate=1e-30",
                         "tensorboard=false")
    summary = train(cfg, tmp_path, verbose=False)
    assert summary.status == "completed" and summary.epochs == 3


def test_train_is_a_plain_function_that_stops_when_asked_and_resumes(tmp_path):
    """should_stop ends training between steps with Interrupted; the finished epochs and
    the checkpoint stay, and calling train() again finishes the run from there."""
    import signal

    cfg = compose_config(*FAST, "epochs=3", "tensorboard=false")
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    epochs_seen = []

    def stop_in_epoch_two():
        epochs_seen.append(len(record.read_metrics(tmp_path)))
        return epochs_seen[-1] >= 1

    try:
        train(cfg, tmp_path, verbose=False, should_stop=stop_in_epoch_two)
    except Interrupted as stop:
        assert stop.epochs == 1
    else:
        raise AssertionError("train() did not stop when asked")
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers  # no handlers left
    assert [row["epoch"] for row in record.read_metrics(tmp_path)] == [1]
    assert record.read_summary(tmp_path) is None and (tmp_path / "checkpoint").is_dir()
    summary = train(cfg, tmp_path, verbose=False)
    assert summary.status == "completed" and summary.epochs == 3
    assert [row["epoch"] for row in record.read_metrics(tmp_path)] == [1, 2, 3]


def test_the_sweep_objective_is_the_metric_the_config_names(tmp_path):
    cfg = compose_config(*FAST, "epochs=1", "tensorboard=false",
                         "optimized_metric=test_accuracy")
    value = run_job(cfg, tmp_path, multirun=True)
    summary = record.read_summary(tmp_path)
    assert value == summary.test_accuracy != summary.best_val_accuracy


@pytest.mark.parametrize("args, text", [
    ((5000, 0, 14, 360), "5000 steps (epochs 1-14, 360 steps each)"),
    ((5000, 13, 14, 360), "5000 steps (epoch 14, 360 steps each)"),
    ((40, 0, 1, 40), "40 steps (1 epoch, 40 steps each)"),
    ((30, 0, 1, 40), "30 steps (part of one epoch of 40)"),
])
def test_the_first_log_line_says_how_long_the_run_is_and_what_this_attempt_trains(args, text):
    from highway_study.training.engine import schedule_text

    assert schedule_text(*args) == text
