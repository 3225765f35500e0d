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
from highway_study.training.keras_members import KerasMembers
from keras_oracle import fit_alone

SMALL = ("data=synthetic", "depth=4", "width=12", "batch_size=32", "tensorboard=false",
         "setup=blog", "max_steps=20")


def configs(*members, extra=()):
    """One config per (carry_bias, seed, learning rate) member."""
    return [compose_config(*SMALL, *extra, f"carry_bias={bias}", f"seed={seed}",
                           f"optimizer.learning_rate={lr}") for bias, seed, lr in members]


def rows(run_dir):
    return [{k: v for k, v in row.items() if k != "seconds"}
            for row in record.read_metrics(run_dir)]


# Every model of the catalog, highway_fc and plain_fc both ways (stacked or vectorized
# weights; one Keras model per member), with sizes that keep each case a few seconds.
MODELS = {
    "highway_fc": (),
    "highway_fc_layers": ("model.implementation=layers",),
    "plain_fc": ("model=plain_fc", "width=12"),
    "plain_fc_layers": ("model=plain_fc", "width=12", "model.implementation=layers"),
    "residual_fc": ("model=residual_fc", "width=12"),
    "residual_fc_scaled": ("model=residual_fc", "width=12", "model.branch_scale=0.3",
                           "model.kinks=spread"),
    "shallow": ("model=shallow", "depth=1"),
    "softmax": ("model=softmax", "depth=0"),
    "highway_conv": ("model=highway_conv", "data=digits", "data.train_limit=256", "width=4",
                     "depth=2", "model.dropout=0.25", "model.pool_after=[0]"),
    "plain_conv": ("model=plain_conv", "data=digits", "data.train_limit=256", "width=4",
                   "depth=2"),
}


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("model", list(MODELS))
def test_every_member_trains_as_keras_fit_trains_it_alone(tmp_path, model, optimizer):
    """The engine against Keras's own train step and optimizer, member by member."""
    cfgs = configs((-1, 0, 0.01), (-3, 1, 0.02),
                   extra=(f"optimizer={optimizer}", "eval_every=7", "max_steps=12",
                          "epochs=3", *MODELS[model]))
    together = pop.train_population(cfgs, [tmp_path / f"p{i}" for i in range(2)])
    for i, cfg in enumerate(cfgs):
        oracle = fit_alone(cfg)
        assert together[i].status == "completed"
        mine = rows(tmp_path / f"p{i}")
        assert [r["step"] for r in mine] == [step for step, _, _ in oracle["epochs"]]
        for row, (_, val_loss, val_accuracy) in zip(mine, oracle["epochs"]):
            np.testing.assert_allclose(row["val_loss"], val_loss, rtol=2e-5)
            np.testing.assert_allclose(row["val_accuracy"], val_accuracy, atol=1e-6)
        np.testing.assert_allclose(together[i].test_loss, oracle["test"][0], rtol=2e-5)


def test_a_run_alone_is_a_population_of_one(tmp_path):
    """train() and a member of a larger population write the same records and fields."""
    cfgs = configs((-1, 0, 0.01), (-3, 1, 0.02), (-2, 0, 0.005), extra=("eval_every=7",))
    together = pop.train_population(cfgs, [tmp_path / f"p{i}" for i in range(3)], groups=2)
    for i, cfg in enumerate(cfgs):
        alone = train(cfg, tmp_path / f"a{i}", verbose=False)
        assert together[i].status == alone.status == "completed"
        assert together[i].steps == alone.steps == 20
        assert together[i].engine == alone.engine == {
            "kernel": "xla", "why": "depth 4 < 100, where XLA is as fast"}
        assert together[i].data_source == alone.data_source is not None
        assert set(together[i].to_dict()) == set(alone.to_dict())
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


def test_a_model_added_the_documented_way_trains_as_a_population(tmp_path, monkeypatch):
    """A new builder module and catalog entry, nothing else: it trains in a population."""
    import types

    import keras

    from highway_study import catalog

    def build(cfg, num_features, num_classes, image_shape=None):
        return keras.Sequential([keras.Input(shape=(num_features,)),
                                 keras.layers.Dense(cfg.width, activation="tanh"),
                                 keras.layers.Dense(num_classes)], name="tanh_mlp")

    monkeypatch.setitem(sys.modules, "highway_study.models.tanh_mlp",
                        types.SimpleNamespace(build=build))
    spec = catalog.ModelSpec("tanh_mlp", "plain", "dense", gated=False, builder="tanh_mlp")
    monkeypatch.setitem(catalog.MODELS, "tanh_mlp", spec)
    cfgs = configs((-1, 0, 0.01), (-1, 1, 0.05), extra=("model=plain_fc",))
    for cfg in cfgs:
        cfg.model.name = "tanh_mlp"
    summaries = pop.train_population(cfgs, [tmp_path / "a", tmp_path / "b"])
    assert [s.status for s in summaries] == ["completed", "completed"]
    assert summaries[0].engine["kernel"] == "vectorized"
    oracle = fit_alone(cfgs[1])
    # 20 steps at rate 0.05 let the batched matmul's order of sums show (one step agrees
    # to 1e-5: test_vectorized_outputs_and_gradients_match_each_members_keras_model).
    np.testing.assert_allclose(summaries[1].test_loss, oracle["test"][0], rtol=1e-4)


def test_outputs_and_gradients_match_each_members_keras_model():
    """The stacked forward pass and its gradient against every member's own Keras model."""

    cfgs = configs((-1, 0, 0.01), (-2, 1, 0.01), (-4, 2, 0.01))
    dataset, models, states = members_built(cfgs)
    population = batched.StackedHighway(cfgs, states, groups=1)
    group = population.groups[0]
    rng = np.random.default_rng(0)
    x = rng.random((3, 8, dataset.num_features), np.float32)
    y = rng.integers(0, 10, (3, 8)).astype(np.int32)
    with tf.GradientTape() as tape:
        logits = population.forward(group, tf.constant(x), training=True)
        loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
    grads = tape.gradient(loss, group.variables)
    assert_each_member_is_its_model(models, x, y, logits, lambda k: [
        np.take(g.numpy(), k, batched.MEMBER_AXIS[name]).reshape(w.shape)
        for g, name, w in zip(grads, batched.NAMES, models[k].trainable_weights)])


def members_built(cfgs):
    """(data set, each member's Keras model as its seed draws it, their starting states)."""
    from highway_study.models import build_model
    from highway_study.training import seed_everything

    dataset = pop_data(cfgs[0])
    models = []
    for cfg in cfgs:
        seed_everything(cfg.seed)
        models.append(build_model(cfg, dataset.num_features, dataset.num_classes))
    return dataset, models, [{"weights": m.get_weights(), "slots": {}} for m in models]


def assert_each_member_is_its_model(models, x, y, logits, member_grads):
    """Member k's logits and gradients (`member_grads(k)`) are its own Keras model's."""
    for k, model in enumerate(models):
        with tf.GradientTape() as tape:
            alone = model(x[k], training=True)
            loss_k = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(y[k], alone))
        grads_k = tape.gradient(loss_k, model.trainable_weights)
        np.testing.assert_allclose(logits[k], alone, rtol=1e-5, atol=1e-6)
        for a, b in zip(member_grads(k), grads_k):
            np.testing.assert_allclose(a, b.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("model", ["plain_fc", "residual_fc", "shallow"])
def test_vectorized_outputs_and_gradients_match_each_members_keras_model(model):
    """The vectorized graph's forward pass and gradient against every member's own model."""
    from highway_study.training.vectorized_members import VectorizedMembers

    extra = {"plain_fc": ("model=plain_fc",), "residual_fc": ("model=residual_fc",
             "model.branch_scale=0.5"), "shallow": ("model=shallow", "depth=1")}[model]
    cfgs = configs((-1, 0, 0.01), (-2, 1, 0.01), (-4, 2, 0.01), extra=extra)
    dataset, models, states = members_built(cfgs)
    population = VectorizedMembers(cfgs, models, states)
    rng = np.random.default_rng(0)
    x = rng.random((3, 8, dataset.num_features), np.float32)
    y = rng.integers(0, 10, (3, 8)).astype(np.int32)
    with tf.GradientTape() as tape:
        logits = population._all_logits(tf.constant(x), training=True)
        loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
    grads = tape.gradient(loss, population.weights)
    assert_each_member_is_its_model(models, x, y, logits, lambda k: [g[k].numpy() for g in grads])


def pop_data(cfg):
    from highway_study import data

    return data.load(cfg.data, cfg.seed)


@pytest.mark.parametrize("model", ["highway_fc", "plain_fc"])
@pytest.mark.parametrize("optimizer, slots", [("adam", {"m", "v"}), ("momentum", {"m"}),
                                               ("sgd", set())])
def test_a_member_that_diverges_is_frozen_with_its_optimizer_state(tmp_path, model, optimizer,
                                                                    slots):
    """The optimizer state of a diverged member must not absorb its non-finite gradient, and
    its weights must not move on (Adam and momentum would keep stepping on their old state)."""
    from highway_study.training.engine import _build, Member

    cfgs = configs((-1, 0, 0.01), (-2, 1, 1e30), extra=(f"optimizer={optimizer}",
                                                          f"model={model}"))
    members = [Member(cfg, tmp_path / str(k), dataset=pop_data(cfg))
               for k, cfg in enumerate(cfgs)]
    keep = model != "highway_fc"
    models, states, _ = _build(members, keep=keep)
    population = (KerasMembers(cfgs, models, states, 100) if keep
                  else batched.StackedHighway(cfgs, states, groups=1, total_steps=100))
    x = [np.ones((32, members[0].dataset.num_features), np.float32)] * 2
    y = [np.zeros(32, np.int32)] * 2
    population.step(x, y, 0)
    before = population.member_state(1)
    population.freeze(1)
    for step in range(1, 4):
        population.step(x, y, step)
    after = population.member_state(1)
    assert set(after["slots"]) == slots
    for a, b in zip(after["weights"], before["weights"]):
        np.testing.assert_array_equal(a, b)
    for slot in slots:
        for a, b in zip(after["slots"][slot], before["slots"][slot]):
            np.testing.assert_array_equal(a, b)
    moved = population.member_state(0)["weights"]
    assert not all(np.array_equal(a, b) for a, b in zip(moved, states[0]["weights"]))


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
        assert pop.resume_epoch(run_dir) == 1 and record.read_summary(run_dir) is None
    resumed = pop.train_population(cfgs, stopped)
    for i in range(2):
        assert rows(stopped[i]) == rows(tmp_path / f"u{i}")
        assert resumed[i].test_loss == whole[i].test_loss
        assert not (stopped[i] / "checkpoint").exists()


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
    assert groups[3:] == [[3], [5], [7], [9]]  # a group of one each; depth 0 is refused


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
    # The task function ran for every member (the one door): each logs its end line.
    assert output.count(": completed, best val acc") == 8
    assert "TensorFlow threads in this job: 1 per op" in output  # parts side by side
    assert "8/8 runs done, 0 failed" in output
    leads, shown = [], 0  # each population's running best never goes down
    for line in output.splitlines():
        if "population of" in line:
            leads.append([])
        elif "best val acc so far" in line:
            leads[-1].append(float(line.split("so far")[1].split("%")[0]))
            shown += 1
    assert shown >= 4 and all(lead == sorted(lead) for lead in leads)
    assert "Nothing was trained" not in output  # the population's runs count as trained
    progress = [json.loads(line) for line in (sweep / "progress.jsonl").read_text().splitlines()]
    assert not [event for event in progress if event.get("skipped")]
    runs = sorted(p.parent for p in sweep.rglob("summary.json"))
    assert len(runs) == 8
    for run in runs:
        assert record.read_summary(run).status == "completed"
        assert (run / ".hydra" / "config.yaml").exists() and len(record.read_metrics(run)) == 2
        assert not (run / ".run.lock").exists()  # removed by the member's last release
    assert not (sweep / ".sweep.lock").exists()
    multirun = json.loads(json.dumps(sorted(p.name for p in runs)))
    assert sum("model=highway_fc" in name for name in multirun) == 4


def test_population_local_launcher_trains_each_group_as_one_submitit_task(tmp_path):
    """hydra/launcher=population_slurm's path through submitit's local executor: the two
    highway nets are one task (one population), the two plain nets another; every run gets
    its record."""
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
    assert len(tasks) == 2  # a population of 2 highway nets, one of 2 plain nets
    logs = "".join(p.read_text() for p in (tmp_path / "sweep" / ".submitit").rglob("*_log.*"))
    assert "training 2 runs as one population" in logs


def test_hydra_discovers_the_population_launchers_itself(tmp_path):
    """Hydra's public discovery (its walk of the hydra_plugins namespace) finds the three
    launchers once `python -m highway_study` is loaded, in this editable install too: no
    class is registered by hand."""
    code = ("import highway_study.__main__; from hydra.core.plugins import Plugins; "
            "from hydra.plugins.launcher import Launcher; print(*(c.__module__ + '.' + "
            "c.__name__ for c in Plugins.instance().discover(Launcher)))")
    found = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                           text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert found.returncode == 0, found.stderr[-2000:]
    names = found.stdout.split()
    for launcher in ("PopulationLauncher", "cluster.PopulationLocalLauncher",
                     "cluster.PopulationSlurmLauncher"):
        assert f"hydra_plugins.highway_study_population.{launcher}" in names
    assert names.count("hydra_plugins.highway_study_population.PopulationLauncher") == 1


def test_launchers_are_told_apart_by_class_not_by_name():
    """A launcher subclassed under another name keeps the population's threads and checks."""
    from highway_study.runtime import launchers, threads

    module = sys.modules[__name__]
    from hydra_plugins.highway_study_population import PopulationLauncher

    class RenamedLauncher(PopulationLauncher):
        pass

    module.RenamedLauncher = RenamedLauncher
    renamed = {"_target_": f"{__name__}.RenamedLauncher"}
    assert launchers.is_population(renamed) and not launchers.is_submitit(renamed)
    assert threads.op_threads(renamed) == threads.POPULATION_OP_THREADS
    named_like_one = {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher",
                      "comment": "highway_study_population"}
    assert not launchers.is_population(named_like_one)
    assert launchers.is_slurm(
        {"_target_": "hydra_plugins.highway_study_population.cluster.PopulationSlurmLauncher"})
    assert not launchers.is_population({"_target_": "no.such.Launcher"})
