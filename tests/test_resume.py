"""Nothing lost, nothing misrecorded: interrupted, resumed and damaged runs.

A resumed run must be the run it claims to be (the same weights as the uninterrupted one), a
run stopped after its last epoch must not train again, a damaged checkpoint must fall back
to the one before it, and an unfinished run must not resume under another config.
"""

import json
import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import highway_study.training as training
from compose import compose_config
from faults import fault
from highway_study import record
from highway_study.runtime import job
from highway_study.training import Interrupted, checkpoint, train

SMALL = ("data=synthetic", "depth=2", "width=8", "epochs=4", "batch_size=64",
         "tensorboard=false", "optimizer=momentum", "seed=3")
CONV = ("data=synthetic", "data.num_features=16", "model=highway_conv", "depth=2", "width=4",
        "model.pool_after=[0]", "model.dropout=0.3", "epochs=3", "batch_size=64",
        "tensorboard=false", "optimizer=momentum", "seed=3")


@pytest.fixture
def models(monkeypatch):
    """Every model train() builds, in order (the last one is the one it trained)."""
    built = []
    original = training.build_and_compile

    def keep(cfg, dataset):
        model = original(cfg, dataset)
        built.append(model)
        return model

    monkeypatch.setattr(training, "build_and_compile", keep)
    return built


def stop_after(run_dir, epochs):
    return lambda: len(record.read_metrics(run_dir)) >= epochs


def interrupt(args, run_dir, epochs) -> Interrupted:
    """Train until `epochs` epochs are on disk, then stop as a signal would."""
    with pytest.raises(Interrupted) as stopped:
        train(compose_config(*args), run_dir, verbose=False, should_stop=stop_after(run_dir, epochs))
    cfg = compose_config(*args)
    job.record_interruption(run_dir, cfg, "SIGTERM", stopped.value.seconds)
    return stopped.value


def weights(model) -> list[np.ndarray]:
    return [np.asarray(w) for w in model.get_weights()]


def assert_same_run(models_a, models_b, dir_a, dir_b):
    for a, b in zip(weights(models_a[-1]), weights(models_b[-1])):
        np.testing.assert_array_equal(a, b)
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in record.read_metrics(dir_a)]
    assert strip == [{k: v for k, v in row.items() if k != "seconds"}
                     for row in record.read_metrics(dir_b)]


@fault("a run killed mid-training and rerun (momentum SGD; conv net with dropout)",
       "in-process `train()` stopped after epoch 2, then `train()` again",
       "the resumed run ends with the same weights and metrics as the uninterrupted one",
       )
@pytest.mark.parametrize("args", [SMALL, CONV], ids=["dense_momentum", "conv_dropout"])
def test_a_resumed_run_equals_the_uninterrupted_one(args, tmp_path, models):
    train(compose_config(*args), tmp_path / "whole", verbose=False)
    whole = list(models)
    models.clear()
    interrupt(args, tmp_path / "cut", 2)
    summary = train(compose_config(*args), tmp_path / "cut", verbose=False)
    assert summary.status == "completed" and summary.epochs == compose_config(*args).epochs
    assert_same_run(whole, models, tmp_path / "whole", tmp_path / "cut")


@fault("a resumed run's `wall_seconds`",
       "`train()` stopped, rerun (after a SIGTERM record, and after a kill -9 without one)",
       "`wall_seconds` adds up every attempt: the interrupted record's, else the checkpoint's")
def test_wall_seconds_add_up_every_attempt(tmp_path):
    run = tmp_path / "run"
    interrupt(SMALL, run, 2)
    summary = record.read_summary(run)
    summary.wall_seconds = 1000.0  # as if the first attempt had taken 1000 s
    record.write_summary(run, summary)
    assert train(compose_config(*SMALL), run, verbose=False).wall_seconds > 1000.0

    killed = tmp_path / "killed"  # kill -9: no summary, only the checkpoint says
    interrupt(SMALL, killed, 2)
    (killed / record.SUMMARY_FILE).unlink()
    state = checkpoint.checkpoint_dir(killed) / "epoch-00002.json"
    state.write_text(json.dumps({**json.loads(state.read_text()), "wall_seconds": 500.0}))
    assert train(compose_config(*SMALL), killed, verbose=False).wall_seconds > 500.0


@fault("SIGTERM or Ctrl-C while the finished net is tested or lesioned",
       "in-process: `lesion_accuracies` raises KeyboardInterrupt after epoch 3, then rerun",
       "the checkpoint is kept until summary.json is written; the rerun trains nothing, "
       "keeps metrics.jsonl and only tests and lesions")
def test_a_stop_while_lesioning_resumes_without_training(tmp_path, monkeypatch):
    args = ("data=synthetic", "depth=3", "width=8", "epochs=3", "lesion_every=1",
            "tensorboard=false")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("Ctrl-C")

    monkeypatch.setattr(training, "lesion_accuracies", killed)
    with pytest.raises(KeyboardInterrupt):
        train(compose_config(*args), tmp_path, verbose=False)
    job.record_interruption(tmp_path, compose_config(*args), "Ctrl-C")
    metrics = (tmp_path / record.METRICS_FILE).read_text()
    assert metrics.count("\n") == 3 and checkpoint.has_checkpoint(tmp_path)
    monkeypatch.undo()

    summary = train(compose_config(*args), tmp_path, verbose=False)
    assert summary.status == "completed" and [r["layer"] for r in summary.lesion] == [0, 1, 2]
    assert (tmp_path / record.METRICS_FILE).read_text() == metrics  # same rows, same seconds
    assert not checkpoint.checkpoint_dir(tmp_path).exists()


@fault("SIGTERM twice after the last epoch, during the test evaluation or the lesioning",
       "`python -m highway_study data=digits depth=30 epochs=3 lesion_every=1`, signals "
       "after epoch 3, then the same command",
       "exit 143; the rerun neither trains again nor empties metrics.jsonl, and ends completed")
def test_cli_signal_after_the_last_epoch_loses_nothing(tmp_path):
    args = ["data=digits", "depth=30", "epochs=3", "lesion_every=1", "tensorboard=false",
            "hydra.run.dir=run"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen([sys.executable, "-m", "highway_study", *args], cwd=tmp_path,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "run" / record.METRICS_FILE
    deadline = time.monotonic() + 240
    while not (metrics.exists() and metrics.read_text().count("\n") >= 3):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)  # now testing or lesioning
    time.sleep(0.5)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # the second one stops at once
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    rows = metrics.read_text()

    rerun = subprocess.run([sys.executable, "-m", "highway_study", *args], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert metrics.read_text() == rows  # not retrained, not emptied
    summary = record.read_summary(tmp_path / "run")
    assert summary.status == "completed" and summary.epochs == 3 and len(summary.lesion) == 30


def damage_newest_weights(run_dir):
    path = checkpoint.checkpoint_dir(run_dir) / "epoch-00002.weights.h5"
    path.write_bytes(path.read_bytes()[:200])


def damage_newest_state(run_dir):
    path = checkpoint.checkpoint_dir(run_dir) / "epoch-00002.json"
    path.write_text(path.read_text()[:7])


def damage_every_checkpoint(run_dir):
    for path in checkpoint.checkpoint_dir(run_dir).glob("epoch-*.weights.h5"):
        path.write_bytes(b"\x89HDF\r\n" + path.read_bytes()[6:300])


def leave_a_half_written_checkpoint(run_dir):
    folder = checkpoint.checkpoint_dir(run_dir)
    (folder / "tmp-epoch-00003.weights.h5").write_bytes(b"half")
    (folder / "epoch-00003.weights.h5").write_bytes(b"renamed, but its state never written")


def as_written_before(run_dir):
    """The checkpoint as keras.callbacks.BackupAndRestore wrote it before this layout."""
    folder = checkpoint.checkpoint_dir(run_dir)
    (folder / "epoch-00002.weights.h5").rename(folder / "latest.weights.h5")
    (folder / "training_metadata.json").write_text('{"epoch": 2, "batch": 0}')
    for path in folder.glob("epoch-*"):
        path.unlink()


for what, damage, outcome in [
    ("a truncated newest checkpoint (weights file)", damage_newest_weights,
     "one warning sentence; the run resumes from the checkpoint before it"),
    ("a truncated newest checkpoint state (.json)", damage_newest_state,
     "one warning sentence; the run resumes from the checkpoint before it"),
    ("every checkpoint unreadable", damage_every_checkpoint,
     "one warning sentence each; training starts over from epoch 1"),
    ("a kill while a checkpoint was being written", leave_a_half_written_checkpoint,
     "the half-written files are ignored and removed; the run resumes from the last whole one"),
    ("a checkpoint written by the previous version (Keras BackupAndRestore's files)",
     as_written_before, "restored: the run resumes after its epoch"),
]:
    from faults import add

    add(what, "`train()` stopped after epoch 2, the checkpoint changed so, then `train()` again",
        outcome + "; the result equals the uninterrupted run",
        "test_resume.py::test_a_damaged_checkpoint_falls_back_and_still_equals_the_whole_run")


@pytest.mark.parametrize("damage, resumed_after", [
    (damage_newest_weights, 1), (damage_newest_state, 1), (damage_every_checkpoint, 0),
    (leave_a_half_written_checkpoint, 2), (as_written_before, 2)])
def test_a_damaged_checkpoint_falls_back_and_still_equals_the_whole_run(
        damage, resumed_after, tmp_path, models, caplog):
    train(compose_config(*SMALL), tmp_path / "whole", verbose=False)
    whole = list(models)
    models.clear()
    run = tmp_path / "cut"
    interrupt(SMALL, run, 2)
    damage(run)
    with caplog.at_level(logging.INFO, logger="highway_study"):
        summary = train(compose_config(*SMALL), run, verbose=False)
    assert summary.status == "completed" and summary.epochs == 4
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if resumed_after < 2:
        assert warnings and all("cannot be used" in w and "\n" not in w for w in warnings)
    if resumed_after:
        assert f"resuming cut after epoch {resumed_after}" in caplog.text
    else:
        assert "training starts over from epoch 1" in caplog.text
    assert_same_run(whole, models, tmp_path / "whole", run)


@fault("a kill while a checkpoint is being restored",
       "`train()` on an interrupted run, the restore interrupted",
       "metrics.jsonl is untouched until a restore has succeeded")
def test_a_kill_during_the_restore_leaves_metrics_as_they_were(tmp_path, monkeypatch):
    interrupt(SMALL, tmp_path, 2)
    before = (tmp_path / record.METRICS_FILE).read_text()

    def killed(model, weights):
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "_load", killed)
    with pytest.raises(KeyboardInterrupt):
        train(compose_config(*SMALL), tmp_path, verbose=False)
    assert (tmp_path / record.METRICS_FILE).read_text() == before


@fault("an unfinished run rerun with another `carry_bias`, `optimizer.learning_rate` or `depth`",
       "`python -m highway_study ... depth=3 hydra.run.dir=RUN` on a run interrupted at depth 2",
       "exit 1 and one sentence naming the changed keys; the folder is left as it was")
def test_an_unfinished_run_is_not_resumed_under_another_config(tmp_path, run_cli):
    interrupt(SMALL, tmp_path, 1)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    for change in ("carry_bias=-5", "optimizer.learning_rate=0.5", "depth=3"):
        with pytest.raises(job.ConfigChanged, match=r"unfinished run \(1 epochs recorded\) "
                                                    r"whose config differs in "):
            job.recorded_objective(tmp_path, compose_config(*SMALL, change))
    assert job.recorded_objective(tmp_path, compose_config(*SMALL)) is None  # same: resume

    result = run_cli(*SMALL, "depth=3", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    message = [line for line in result.stderr.splitlines() if "unfinished run" in line]
    assert len(message) == 1 and "differs in depth" in message[0]
    assert all(path.read_bytes() == data for path, data in before.items())  # left as it was
    new = {p.name for p in tmp_path.rglob("*") if p.is_file() and p not in before}
    assert new <= {"config.yaml", "hydra.yaml", "overrides.yaml", "__main__.log", ".run.lock"}


@fault("an empty or cut-off summary.json in a run folder",
       "rerun the sweep (or the run) into that folder",
       "one warning sentence; the run counts as unfinished and is trained again")
def test_a_corrupt_summary_counts_as_unfinished(tmp_path, caplog):
    cfg = compose_config(*SMALL)
    train(cfg, tmp_path, verbose=False)
    for damaged in ("", '{"schema": 1, "sta', "[1, 2]"):
        (tmp_path / record.SUMMARY_FILE).write_text(damaged)
        caplog.clear()
        assert job.recorded_objective(tmp_path, cfg) is None
        assert "summary.json cannot be read" in caplog.text and "treated as unfinished" in caplog.text
    assert train(cfg, tmp_path, verbose=False).status == "completed"
