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
from highway_study.training import engine
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
    """The trained weights of every run train() finishes, in order."""
    trained = []
    original = engine._summaries

    def keep(members_engine, members, *args):
        trained.append(members_engine.member_state(0)["weights"])
        return original(members_engine, members, *args)

    monkeypatch.setattr(engine, "_summaries", keep)
    return trained


def stop_after(run_dir, epochs):
    return lambda: len(record.read_metrics(run_dir)) >= epochs


def interrupt(args, run_dir, epochs) -> Interrupted:
    """Train until `epochs` epochs are on disk, then stop as a signal would."""
    with pytest.raises(Interrupted) as stopped:
        train(compose_config(*args), run_dir, verbose=False, should_stop=stop_after(run_dir, epochs))
    cfg = compose_config(*args)
    job.record_interruption(run_dir, cfg, "SIGTERM", stopped.value.seconds)
    return stopped.value


def weights(arrays) -> list[np.ndarray]:
    return [np.asarray(w) for w in arrays]


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

    monkeypatch.setattr(engine.KerasMembers, "lesions", killed)
    monkeypatch.setattr(engine.StackedHighway, "lesions", killed)
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
       "`python -m highway_study data=digits depth=300 epochs=3 lesion_every=1`, signals "
       "after epoch 3, then the same command",
       "exit 143; the rerun neither trains again nor empties metrics.jsonl, and ends completed")
def test_cli_signal_after_the_last_epoch_loses_nothing(tmp_path):
    args = ["data=digits", "depth=300", "epochs=3", "lesion_every=1", "tensorboard=false",
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
    assert summary.status == "completed" and summary.epochs == 3 and len(summary.lesion) == 300


def damage_newest_weights(run_dir):
    path = checkpoint.checkpoint_dir(run_dir) / "epoch-00002.npz"
    path.write_bytes(path.read_bytes()[:200])


def damage_newest_state(run_dir):
    path = checkpoint.checkpoint_dir(run_dir) / "epoch-00002.json"
    path.write_text(path.read_text()[:7])


def damage_every_checkpoint(run_dir):
    for path in checkpoint.checkpoint_dir(run_dir).glob("epoch-*.npz"):
        path.write_bytes(b"PK\x03\x04" + path.read_bytes()[4:300])


def leave_a_half_written_checkpoint(run_dir):
    folder = checkpoint.checkpoint_dir(run_dir)
    (folder / "tmp-epoch-00003.npz").write_bytes(b"half")
    (folder / "epoch-00003.npz").write_bytes(b"renamed, but its state never written")


def keras_checkpoint(run_dir, path) -> None:
    """The epoch-2 state written as a run alone wrote it before the one engine: weights and
    the Keras optimizer's state in one .weights.h5."""
    from highway_study import data
    from keras_oracle import compiled

    cfg = compose_config(*SMALL)
    state = checkpoint.restore(run_dir, {}, at_most=2).state
    model = compiled(cfg, data.load(cfg.data, cfg.seed), steps=1)
    model.optimizer.build(model.trainable_variables)
    model.set_weights(state["weights"])
    for variable, value in zip(model.optimizer.momentums, state["slots"]["m"]):
        variable.assign(value)
    model.save_weights(str(path))


def as_a_run_alone_wrote_it_before(run_dir):
    """The checkpoint as train() wrote it with Keras fit (epoch-N.weights.h5 + .json)."""
    folder = checkpoint.checkpoint_dir(run_dir)
    keras_checkpoint(run_dir, folder / "epoch-00002.weights.h5")
    (folder / "epoch-00002.json").write_text(
        '{"epoch": 2, "wall_seconds": 1.0, "trained": false, "diverged": false}')
    for path in folder.glob("epoch-*.npz"):
        path.unlink()


def as_backup_and_restore_wrote_it(run_dir):
    """The checkpoint as keras.callbacks.BackupAndRestore wrote it, two versions back."""
    folder = checkpoint.checkpoint_dir(run_dir)
    keras_checkpoint(run_dir, folder / "latest.weights.h5")
    (folder / "training_metadata.json").write_text('{"epoch": 2, "batch": 0}')
    for path in folder.glob("epoch-*"):
        path.unlink()


def as_a_population_wrote_it_before(run_dir):
    """The checkpoint as a population member wrote it before the one engine."""
    folder = checkpoint.checkpoint_dir(run_dir)
    state = checkpoint.restore(run_dir, {}, at_most=2).state
    weights, slots = state["weights"], state["slots"]
    names = ("w_in", "b_in", "kernel", "bias", "w_out", "b_out")

    def member_layout(name, array):
        if name in ("b_in", "b_out"):
            return array[None]
        return array[:, None, :] if name == "bias" else array

    arrays = {n: member_layout(n, w) for n, w in zip(names, weights)}
    arrays.update({f"m_{n}": member_layout(n, w) for n, w in zip(names, slots["m"])})
    np.savez(folder / "population.npz", epoch=2, diverged_at=-1, **arrays)
    for path in folder.glob("epoch-*"):
        path.unlink()


def truncated_population_file(run_dir):
    """A population.npz of an earlier version, cut short by a full disk or a copy."""
    as_a_population_wrote_it_before(run_dir)
    path = checkpoint.checkpoint_dir(run_dir) / "population.npz"
    path.write_bytes(path.read_bytes()[:300])


for what, damage, outcome in [
    ("a truncated newest checkpoint (weights file)", damage_newest_weights,
     "one warning sentence; the run resumes from the checkpoint before it"),
    ("a truncated newest checkpoint state (.json)", damage_newest_state,
     "one warning sentence; the run resumes from the checkpoint before it"),
    ("every checkpoint unreadable", damage_every_checkpoint,
     "one warning sentence each; training starts over from epoch 1"),
    ("a kill while a checkpoint was being written", leave_a_half_written_checkpoint,
     "the half-written files are ignored and removed; the run resumes from the last whole one"),
    ("a checkpoint written by a run alone before the one engine (Keras `.weights.h5`)",
     as_a_run_alone_wrote_it_before, "restored: the run resumes after its epoch"),
    ("a checkpoint written by Keras BackupAndRestore (two versions back)",
     as_backup_and_restore_wrote_it, "restored: the run resumes after its epoch"),
    ("a checkpoint written by a population member before the one engine (`population.npz`)",
     as_a_population_wrote_it_before, "restored: the run resumes after its epoch"),
    ("a truncated `population.npz` of an earlier version", truncated_population_file,
     "one warning sentence; training starts over from epoch 1"),
]:
    from faults import add

    add(what, "`train()` stopped after epoch 2, the checkpoint changed so, then `train()` again",
        outcome + "; the result equals the uninterrupted run",
        "test_resume.py::test_a_damaged_checkpoint_falls_back_and_still_equals_the_whole_run")


@pytest.mark.parametrize("damage, resumed_after", [
    (damage_newest_weights, 1), (damage_newest_state, 1), (damage_every_checkpoint, 0),
    (leave_a_half_written_checkpoint, 2), (as_a_run_alone_wrote_it_before, 2),
    (as_backup_and_restore_wrote_it, 2), (as_a_population_wrote_it_before, 2),
    (truncated_population_file, 0)])
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

    def killed(path, read_keras):
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "_read_arrays", killed)
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
    kept = {path: data for path, data in before.items() if path.name != ".run.lock"}
    assert all(path.read_bytes() == data for path, data in kept.items())  # left as it was
    new = {p.name for p in tmp_path.rglob("*") if p.is_file() and p not in before}
    assert new <= {"config.yaml", "hydra.yaml", "overrides.yaml", "__main__.log"}


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


# -- one checkpoint, one resume rule: a kill at any write loses at most the epoch in progress


class Killed(BaseException):
    """A kill -9 at a chosen instant (not an Exception: nothing may catch it)."""


def kill_at_save_of(epoch):
    original = checkpoint.save

    def save(run_dir, at, state, info):
        if at == epoch:
            raise Killed
        original(run_dir, at, state, info)
    return "save", save


def kill_at_state_of(epoch):
    original = checkpoint._write_json

    def write(path, data):
        if path.name == f"epoch-{epoch:05d}.json":
            raise Killed
        original(path, data)
    return "_write_json", write


def kill_after_summary():
    def remove(run_dir):
        raise Killed
    return "remove", remove


@fault("a kill at any write of an epoch (after its metrics row, between a checkpoint's "
       "arrays and its state, after summary.json)",
       "in-process: a kill injected at each write of epoch 2 (or after the summary), then "
       "`train()` or a population again",
       "at most the epoch in progress is trained again; the result equals the uninterrupted "
       "run's")
@pytest.mark.parametrize("kill", [lambda: kill_at_save_of(2), lambda: kill_at_state_of(2),
                                  kill_after_summary],
                         ids=["after_metrics_row", "between_arrays_and_state", "after_summary"])
def test_a_kill_at_any_write_loses_at_most_the_epoch_in_progress(kill, tmp_path, models,
                                                                  monkeypatch):
    train(compose_config(*SMALL), tmp_path / "whole", verbose=False)
    whole = list(models)
    models.clear()
    run = tmp_path / "cut"
    name, killer = kill()
    monkeypatch.setattr(checkpoint, name, killer)
    with pytest.raises(Killed):
        train(compose_config(*SMALL), run, verbose=False)
    monkeypatch.undo()
    models.clear()  # the killed attempt's, if it got as far as its summary
    monkeypatch.setattr(engine, "_summaries", models_keeper(models))
    if name == "remove":  # finished: the rerun (through the runtime) trains nothing
        before = (run / record.SUMMARY_FILE).read_text()
        job.run_job(compose_config(*SMALL), run, multirun=True)
        assert not models and (run / record.SUMMARY_FILE).read_text() == before
        return
    assert checkpoint.latest_epoch(run) == 1
    summary = train(compose_config(*SMALL), run, verbose=False)
    assert summary.status == "completed" and summary.epochs == 4
    assert_same_run(whole, models, tmp_path / "whole", run)


def models_keeper(trained):
    original = engine._summaries

    def keep(members_engine, members, *args):
        trained.append(members_engine.member_state(0)["weights"])
        return original(members_engine, members, *args)
    return keep


@fault("a population member resumed alone (its folder as `hydra.run.dir`, or the sweep rerun "
       "without the population launcher)",
       "a population stopped after epoch 2, one member rerun with `train()`",
       "it resumes after epoch 2 from the same checkpoint format; the result equals the "
       "member's uninterrupted run")
def test_a_population_member_resumes_alone_where_the_population_stopped(tmp_path, models):
    cfgs = [compose_config(*SMALL, f"carry_bias={bias}") for bias in (-1, -3)]
    train(cfgs[1], tmp_path / "whole", verbose=False)
    whole = list(models)
    models.clear()
    runs = [tmp_path / "m0", tmp_path / "m1"]
    with pytest.raises(Interrupted):
        training.train_members(cfgs, runs, should_stop=stop_after(runs[0], 2))
    assert checkpoint.latest_epoch(runs[1]) == 2
    summary = train(cfgs[1], runs[1], verbose=False)
    assert summary.status == "completed" and summary.epochs == 4
    assert len(models) == 1
    for a, b in zip(whole[0], models[0]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)  # a batch of 2 vs 1: rounding
    assert [r["epoch"] for r in record.read_metrics(runs[1])] == [1, 2, 3, 4]


@fault("the first curve point after a resume",
       "`train()` stopped mid-way between two curve points, then resumed",
       "its `train_loss` averages every step since the previous point, as the uninterrupted "
       "run's does")
def test_the_first_point_after_a_resume_averages_the_same_steps(tmp_path):
    args = (*SMALL, "eval_every=5")
    train(compose_config(*args), tmp_path / "whole", verbose=False)
    interrupt(args, tmp_path / "cut", 1)
    step = record.read_metrics(tmp_path / "cut")[-1]["step"]
    assert step % 5  # the checkpoint lies between two points
    train(compose_config(*args), tmp_path / "cut", verbose=False)
    whole, cut = record.read_curve(tmp_path / "whole"), record.read_curve(tmp_path / "cut")
    assert [p["step"] for p in whole] == [p["step"] for p in cut]
    for a, b in zip(whole, cut):
        assert a["train_loss"] == b["train_loss"] and a["val_loss"] == b["val_loss"]
