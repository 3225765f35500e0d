"""Populations: a member is the run it would be alone, and never touches another member.

Tolerance: float32 rounding, rtol 1e-5 of each value (a batched matmul may sum in another
order than the single one).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from compose import compose_config
from conftest import REPO
from highway_study import record
from highway_study.training import Interrupted, train
from highway_study.training import batched
from highway_study.training import population as pop

SMALL = ("data=synthetic", "depth=4", "width=12", "batch_size=32", "tensorboard=false",
         "setup=blog", "max_steps=20")


def configs(*members, extra=()):
    """One config per (carry_bias, seed, learning rate) member."""
    return [compose_config(*SMALL, *extra, f"carry_bias={bias}", f"seed={seed}",
                           f"optimizer.learning_rate={lr}") for bias, seed, lr in members]


def rows(run_dir):
    return [{k: v for k, v in row.items() if k != "seconds"}
            for row in record.read_metrics(run_dir)]


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_a_member_trains_as_it_would_alone(tmp_path, optimizer):
    cfgs = configs((-1, 0, 0.01), (-3, 1, 0.02), (-2, 0, 0.005),
                   extra=(f"optimizer={optimizer}", "eval_every=7"))
    together = pop.train_population(cfgs, [tmp_path / f"p{i}" for i in range(3)], groups=2)
    for i, cfg in enumerate(cfgs):
        alone = train(cfg, tmp_path / f"a{i}", verbose=False)
        assert together[i].status == alone.status == "completed"
        assert together[i].steps == alone.steps == 20
        np.testing.assert_allclose(together[i].test_loss, alone.test_loss, rtol=1e-5)
        mine, theirs = rows(tmp_path / f"p{i}"), rows(tmp_path / f"a{i}")
        assert [r["step"] for r in mine] == [r["step"] for r in theirs]
        for a, b in zip(mine, theirs):
            for key in ("train_loss", "val_loss", "val_accuracy", "train_accuracy"):
                np.testing.assert_allclose(a[key], b[key], rtol=1e-5, err_msg=key)
            np.testing.assert_allclose(a["gate_activity"], b["gate_activity"], rtol=1e-5)
        mine, theirs = record.read_curve(tmp_path / f"p{i}"), record.read_curve(tmp_path / f"a{i}")
        assert [p["step"] for p in mine] == [p["step"] for p in theirs] == [0, 7, 14, 20]
        for a, b in zip(mine, theirs):
            assert (a["train_loss"] is None) == (b["train_loss"] is None)  # none at step 0
            for key in ("val_loss", "val_accuracy", "learning_rate", "train_loss"):
                if a[key] is not None:
                    np.testing.assert_allclose(a[key], b[key], rtol=1e-5, err_msg=key)
        assert together[i].curve_area == pytest.approx(alone.curve_area, rel=1e-5)
        assert together[i].steps_to == alone.steps_to


def test_outputs_and_gradients_match_each_members_keras_model():
    """The batched forward and its gradient against every member's own Keras model."""
    from highway_study.models import build_model
    from highway_study.training import seed_everything

    cfgs = configs((-1, 0, 0.01), (-2, 1, 0.01), (-4, 2, 0.01))
    members = [pop.Member(cfg, Path("unused")) for cfg in cfgs]
    for member in members:
        member.dataset = pop.data_lib.load(member.cfg.data, member.cfg.seed)
    initial, _ = pop._initial_weights(members)
    population = batched.Population(members, initial, groups=1)
    group = population.groups[0]
    rng = np.random.default_rng(0)
    x = rng.random((3, 8, members[0].dataset.num_features), np.float32)
    y = rng.integers(0, 10, (3, 8)).astype(np.int32)
    with tf.GradientTape() as tape:
        logits = population.forward(group, tf.constant(x), training=True)
        loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
    grads = tape.gradient(loss, group.variables)
    for k, cfg in enumerate(cfgs):
        seed_everything(cfg.seed)
        ds = members[k].dataset
        model = build_model(cfg, ds.num_features, ds.num_classes)
        with tf.GradientTape() as tape:
            alone = model(x[k], training=True)
            loss_k = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(y[k], alone))
        grads_k = tape.gradient(loss_k, model.trainable_weights)
        np.testing.assert_allclose(logits[k], alone, rtol=1e-5, atol=1e-6)
        ours = [np.take(g.numpy(), k, batched.Group.MEMBER_AXIS[name]).reshape(w.shape)
                for g, name, w in zip(grads, batched.Group.NAMES, model.trainable_weights)]
        for a, b in zip(ours, grads_k):
            np.testing.assert_allclose(a, b.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("optimizer, slots", [("adam", {"m_kernel", "v_kernel"}),
                                               ("momentum", {"m_kernel"}), ("sgd", set())])
def test_a_member_that_diverges_is_frozen_with_its_optimizer_state(tmp_path, optimizer, slots):
    """The optimizer state of a diverged member must not absorb its non-finite gradient, and
    its weights must not move on (Adam and momentum would keep stepping on their old state)."""
    cfgs = configs((-1, 0, 0.01), (-2, 1, 1e30), extra=(f"optimizer={optimizer}",))
    members = [pop.Member(cfg, tmp_path / str(k)) for k, cfg in enumerate(cfgs)]
    for member in members:
        member.dataset = pop.data_lib.load(member.cfg.data, member.cfg.seed)
    initial, _ = pop._initial_weights(members)
    population = batched.Population(members, initial, groups=1, total_steps=100)
    x = [np.ones((32, members[0].dataset.num_features), np.float32)] * 2
    y = [np.zeros(32, np.int32)] * 2
    population.step(x, y, 0)
    before = population.member_arrays(1)
    population.freeze(1)
    for step in range(1, 4):
        population.step(x, y, step)
    after = population.member_arrays(1)
    assert set(after) >= {"kernel"} | slots
    for name, value in after.items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    assert not np.array_equal(population.member_arrays(0)["kernel"], initial[0]["kernel"])


def test_a_diverging_member_leaves_the_others_bit_identical(tmp_path):
    """Bit for bit against the same population whose third member trains normally; within
    float rounding against a population without it (a batch of another size may sum in
    another order)."""
    healthy = [(-1, 0, 0.01), (-3, 1, 0.01)]
    summaries = pop.train_population(configs(healthy[0], (-2, 2, 1e12), healthy[1]),
                                     [tmp_path / "w0", tmp_path / "bad", tmp_path / "w1"])
    assert summaries[1].status == "diverged" and summaries[1].test_accuracy is None
    assert record.read_summary(tmp_path / "bad").status == "diverged"
    assert len(record.read_metrics(tmp_path / "bad")) == 1  # frozen in its first epoch
    pop.train_population(configs(healthy[0], (-2, 2, 0.01), healthy[1]),
                         [tmp_path / "n0", tmp_path / "ok", tmp_path / "n1"])
    pop.train_population(configs(*healthy), [tmp_path / "o0", tmp_path / "o1"])
    for kept, normal, without in (("w0", "n0", "o0"), ("w1", "n1", "o1")):
        assert rows(tmp_path / kept) == rows(tmp_path / normal)  # bit for bit
        a, b = record.read_summary(tmp_path / kept), record.read_summary(tmp_path / normal)
        assert (a.status, a.test_loss, a.gate_activity) == (b.status, b.test_loss,
                                                            b.gate_activity)
        for x, y in zip(rows(tmp_path / kept), rows(tmp_path / without)):
            np.testing.assert_allclose(x["val_loss"], y["val_loss"], rtol=1e-6)
            np.testing.assert_allclose(x["gate_activity"], y["gate_activity"], rtol=1e-6)


def test_an_interrupted_population_resumes_every_member_where_it_stopped(tmp_path):
    cfgs = configs((-1, 0, 0.01), (-3, 1, 0.01), extra=("max_steps=40",))
    whole = pop.train_population(cfgs, [tmp_path / "u0", tmp_path / "u1"])
    stopped = [tmp_path / "s0", tmp_path / "s1"]

    def after_first_epoch():
        return len(record.read_metrics(stopped[0])) >= 1

    with pytest.raises(Interrupted):
        pop.train_population(cfgs, stopped, should_stop=after_first_epoch)
    for run_dir in stopped:
        assert len(record.read_metrics(run_dir)) == 1
        assert pop.saved_epoch(run_dir) == 1 and record.read_summary(run_dir) is None
    resumed = pop.train_population(cfgs, stopped)
    for i in range(2):
        assert rows(stopped[i]) == rows(tmp_path / f"u{i}")
        assert resumed[i].test_loss == whole[i].test_loss
        assert not (stopped[i] / pop.CHECKPOINT_FILE).exists()


def test_a_sweep_mixing_shapes_is_split_into_populations(tmp_path):
    from highway_study.runtime.population import Job, plan

    def job(index, *overrides):
        cfg = compose_config(*SMALL, *overrides)
        return Job(index, None, cfg, tmp_path / str(index))

    jobs = [job(0, "depth=4", "seed=0"), job(1, "depth=8", "seed=0"),
            job(2, "depth=4", "seed=1", "carry_bias=-5"), job(3, "model=plain_fc"),
            job(4, "depth=8", "optimizer.learning_rate=0.3"), job(5, "depth=16"),
            job(6, "depth=4", "optimizer=adam"), job(7, "depth=0"),
            job(8, "depth=4", "optimizer=adam", "seed=3"), job(9, "depth=4", "patience=2")]
    groups = [[j.index for j in group] for group in plan(jobs)]
    assert groups[:3] == [[0, 2], [1, 4], [6, 8]]  # the populations, by shape and optimizer
    assert groups[3:] == [[3], [5], [7], [9]]  # plain net, a group of one, bad depth, patience


def test_the_population_launcher_runs_a_grid_and_writes_every_record(tmp_path):
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        [sys.executable, "-m", "highway_study", "-m", *SMALL, "carry_bias=-1,-3",
         "seed=0,1", "model=highway_fc,plain_fc", "hydra/launcher=population",
         f"hydra.sweep.dir={sweep}"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "training 4 runs as one population" in output
    assert "TensorFlow threads in this job: 1 per op" in output  # parts side by side
    assert "8/8 runs done, 0 failed" in output
    assert "Nothing was trained" not in output  # the population's runs count as trained
    progress = [json.loads(line) for line in (sweep / "progress.jsonl").read_text().splitlines()]
    assert not [event for event in progress if event.get("skipped")]
    runs = sorted(p.parent for p in sweep.rglob("summary.json"))
    assert len(runs) == 8
    for run in runs:
        assert record.read_summary(run).status == "completed"
        assert (run / ".hydra" / "config.yaml").exists() and len(record.read_metrics(run)) == 2
    multirun = json.loads(json.dumps(sorted(p.name for p in runs)))
    assert sum("model=highway_fc" in name for name in multirun) == 4


def test_population_local_launcher_trains_each_group_as_one_submitit_task(tmp_path):
    """hydra/launcher=population_slurm's path through submitit's local executor: two
    highway nets are one task (one population), each plain net a task of its own; every
    run gets its record."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-m", "highway_study", "-m", *SMALL, "model=highway_fc,plain_fc",
         "carry_bias=-1,-2", "hydra/launcher=population_local",
         "hydra.sweep.dir=sweep"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    summaries = [json.loads(p.read_text()) for p in (tmp_path / "sweep").glob("*/summary.json")]
    assert len(summaries) == 4 and {s["status"] for s in summaries} == {"completed"}
    tasks = [p for p in (tmp_path / "sweep" / ".submitit").iterdir() if p.name.isdigit()]
    assert len(tasks) == 3  # one population of 2 highway nets, 2 plain nets alone
    logs = "".join(p.read_text() for p in (tmp_path / "sweep" / ".submitit").rglob("*_log.*"))
    assert "training 2 runs as one population" in logs
