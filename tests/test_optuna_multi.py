"""Several objectives: `optimized_metric` as a list, the two-objective search
(hparams_search=pareto_optuna) end to end through the basic and the population launcher, the
per-depth search (hparams_search=bias_lr_optuna), and the checks made before a search starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from compose import compose_config, compose_multirun
from conftest import REPO
from faults import fault
from highway_study import record
from highway_study.config import ConfigError
from highway_study.runtime import job, storage
from highway_study.runtime.study_guard import StudyMismatch, check_study
from highway_study.runtime.sweep_checks import check_objectives

TINY = ["data=synthetic", "epochs=1", "tensorboard=false", "depth=3", "eval_every=0"]
PARETO = "pareto_highway_fc_synthetic_depth3"


def search(cwd: Path, *args, trials: int = 3, url: str | None = None):
    """Run the search CLI of this checkout in `cwd`; the CompletedProcess."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop(storage.PASSWORD_ENV, None)
    env.pop(storage.URL_ENV, None)
    if url:
        env[storage.URL_ENV] = url
    return subprocess.run(
        [sys.executable, "-m", "highway_study", *TINY, f"hydra.sweeper.n_trials={trials}", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_the_two_searches_compose_as_documented():
    pareto = compose_multirun("hparams_search=pareto_optuna")
    assert list(pareto.optimized_metric) == ["best_val_accuracy", "layers_used"]
    assert list(pareto.hydra.sweeper.direction) == ["maximize", "maximize"]
    assert pareto.depth == 100 and pareto.hydra.sweeper.study_name == \
        "pareto_highway_fc_digits_depth100"
    assert compose_multirun("hparams_search=pareto_optuna", "depth=1000", "data=mnist") \
        .hydra.sweeper.study_name == "pareto_highway_fc_mnist_depth1000"
    per_depth = compose_multirun("hparams_search=bias_lr_optuna", "data=mnist", "setup=blog",
                                 "depth=20")
    sweeper = per_depth.hydra.sweeper
    assert sweeper.study_name == "bias_lr_highway_fc_mnist_depth20"
    assert sweeper.direction == "maximize" and sweeper.n_trials == 24
    assert dict(sweeper.params) == {"carry_bias": "interval(-20.0, -1.0)",
                                    "optimizer.learning_rate": "tag(log, interval(0.0001, 1.0))"}
    assert per_depth.optimized_metric == "best_val_accuracy"
    for cfg in (pareto, per_depth):
        check_objectives(cfg)  # objectives and directions agree


@fault("an Optuna search whose objectives and directions do not match, or that names an "
       "unknown objective",
       "`python -m highway_study hparams_search=pareto_optuna hydra.sweeper.direction=maximize` "
       "(also `optimized_metric=[best_val_accuracy,loss]`, two directions for one objective)",
       "exit 2 and one sentence naming the values, before any trial is asked for")
def test_mismatched_or_unknown_objectives_are_refused_before_the_search(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    refused = search(tmp_path, "hparams_search=pareto_optuna", "hydra.sweeper.direction=maximize",
                     "hydra.sweep.dir=sweep", url=url)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert lines == ["Invalid config: hydra.sweeper.direction=maximize gives 1 direction but "
                     "optimized_metric=[best_val_accuracy,layers_used] names 2 objectives: give "
                     "one direction per objective, e.g. hydra.sweeper.direction="
                     "[maximize,maximize]."]
    assert not (tmp_path / "sweep").exists() and not (tmp_path / "optuna.db").exists()

    refused = search(tmp_path, "hparams_search=pareto_optuna",
                     "optimized_metric=[best_val_accuracy,loss]", "hydra.sweep.dir=sweep", url=url)
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert refused.returncode == 2 and len(lines) == 1, refused.stderr[-2000:]
    assert "'loss'" in lines[0] and ", ".join(record.OBJECTIVES) in lines[0]


@pytest.mark.parametrize("overrides, says", [
    (["hparams_search=pareto_optuna", "hydra.sweeper.direction=maximize"],
     "gives 1 direction but optimized_metric=[best_val_accuracy,layers_used] names 2"),
    (["hparams_search=bias_lr_optuna", "hydra.sweeper.direction=[maximize,maximize]"],
     "gives 2 directions but optimized_metric=best_val_accuracy names 1 objective"),
    (["hparams_search=pareto_optuna", "hydra.sweeper.direction=[maximize,maximize,maximize]"],
     "gives 3 directions but optimized_metric=[best_val_accuracy,layers_used] names 2"),
    (["hparams_search=bias_lr_optuna", "optimized_metric=[layers_used]"],
     "optimized_metric=[layers_used] is a list of one objective"),
    (["hparams_search=pareto_optuna", "hydra.sweeper.direction=[maximize,up]"],
     "holds 'up', which is not allowed: use minimize or maximize"),
    (["hparams_search=pareto_optuna", "optimized_metric=[best_val_accuracy,best_val_accuracy]"],
     "names best_val_accuracy twice"),
])
def test_objectives_and_directions_must_agree(overrides, says):
    with pytest.raises(ConfigError) as error:
        check_objectives(compose_multirun(*overrides))
    assert says in str(error.value) and "\n" not in str(error.value)


def test_a_finished_run_skipped_in_a_sweep_returns_every_objective(tmp_path):
    cfg = compose_config("data=synthetic", "optimized_metric=[best_val_accuracy,layers_used]")
    from omegaconf import OmegaConf

    summary = record.Summary(status="completed", config=OmegaConf.to_container(cfg, resolve=True),
                             best_val_accuracy=0.5, gate_activity=[0.3, 0.05, 0.5])
    # 0.3 and 0.5 opened from the default carry bias's start (sigmoid(-2) = 0.12); 0.05 did not
    record.write_summary(tmp_path, summary)
    assert job.recorded_objective(tmp_path, cfg) == [0.5, 2.0]
    assert job.no_result(cfg.optimized_metric) == [0.0, 0.0]  # a refused run in a sweep
    assert job.no_result("best_val_accuracy") == 0.0


def test_a_study_keeps_its_number_of_objectives(tmp_path, monkeypatch):
    """A one-objective study never takes a two-objective search (its directions are fixed),
    even before its first trial; the two-objective study records its objectives' names."""
    monkeypatch.setenv(storage.URL_ENV, f"sqlite:///{tmp_path / 'optuna.db'}")
    name = "hydra.sweeper.study_name=shared"
    check_study(compose_multirun("hparams_search=bias_lr_optuna", name, "depth=100"))
    with pytest.raises(StudyMismatch) as error:
        check_study(compose_multirun("hparams_search=pareto_optuna", name))
    message = str(error.value)
    assert message.startswith("Optuna study 'shared' in sqlite:///") and "\n" not in message
    assert "made for 1 objective (maximize), but this search has 2 (maximize, maximize)" \
        in message and "hydra.sweeper.study_name=NEW_NAME" in message

    check_study(compose_multirun("hparams_search=pareto_optuna", "hydra.sweeper.study_name=two"))
    study = optuna.load_study(study_name="two", storage=storage.storage_url())
    assert len(study.directions) == 2
    assert study.user_attrs[record.STUDY_OBJECTIVES_ATTR] == ["best_val_accuracy", "layers_used"]


def test_trials_of_a_two_objective_study_never_stay_running(tmp_path, monkeypatch):
    """runtime.trials with two objectives: this process's unfinished trial is failed at exit,
    and a dead worker's trial (no heartbeat) is failed by the next ask."""
    import sqlalchemy

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    monkeypatch.setenv(storage.URL_ENV, url)
    dead = optuna.storages.RDBStorage(url, heartbeat_interval=60)
    study = optuna.create_study(study_name="s", storage=dead, directions=["maximize"] * 2)
    orphan = study.ask()
    dead.record_heartbeat(orphan._trial_id)
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text(
            "UPDATE trial_heartbeats SET heartbeat = '2000-01-01 00:00:00'"))
    engine.dispose()

    keeping = storage.optuna_storage(heartbeat_seconds=60)
    alive = optuna.load_study(study_name="s", storage=keeping)
    done, unfinished = alive.ask(), alive.ask()
    alive.tell(done, [0.9, 3.0])
    keeping.fail_unfinished()  # what runs at exit
    states = {t.number: (t.state, t.values) for t in optuna.load_study(
        study_name="s", storage=url).trials}
    assert states == {0: (optuna.trial.TrialState.FAIL, None),
                      1: (optuna.trial.TrialState.COMPLETE, [0.9, 3.0]),
                      2: (optuna.trial.TrialState.FAIL, None)}
    assert unfinished.number == 2


def _check_pareto_study(tmp_path, sweep: str, url: str, trials: int) -> None:
    """Every trial COMPLETE with two values: accuracy and the layers its run record uses."""
    study = optuna.load_study(study_name=PARETO, storage=url)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * trials
    runs = {}
    for folder in (tmp_path / sweep).iterdir():
        summary = record.read_summary(folder) if folder.is_dir() else None
        if summary is not None:
            runs[round(summary.config["carry_bias"], 9)] = summary
    assert len(runs) == trials
    for trial in study.trials:
        summary = runs[round(trial.params["carry_bias"], 9)]
        assert trial.values == [pytest.approx(summary.best_val_accuracy),
                                float(summary.layers_used)]
    assert study.user_attrs[record.STUDY_OBJECTIVES_ATTR] == ["best_val_accuracy", "layers_used"]
    results = yaml.safe_load((tmp_path / sweep / "optimization_results.yaml").read_text())
    assert results["solutions"] and all(len(s["values"]) == 2 for s in results["solutions"])


@pytest.mark.slow
def test_a_two_objective_search_runs_end_to_end_through_the_basic_launcher(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    result = search(tmp_path, "hparams_search=pareto_optuna", "hydra.sweep.dir=basic", url=url)
    assert result.returncode == 0, result.stderr[-3000:]
    _check_pareto_study(tmp_path, "basic", url, trials=3)

    memory = search(tmp_path, "hparams_search=pareto_optuna", "hydra.sweeper.storage=null",
                    "hydra.sweep.dir=memory", trials=2)  # in-memory study, nothing stored
    assert memory.returncode == 0, memory.stderr[-3000:]
    results = yaml.safe_load((tmp_path / "memory" / "optimization_results.yaml").read_text())
    assert all(len(s["values"]) == 2 for s in results["solutions"])


@pytest.mark.slow
def test_a_two_objective_search_trains_each_batch_as_one_population(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    result = search(tmp_path, "hparams_search=pareto_optuna", "hydra/launcher=population",
                    "hydra.sweeper.n_jobs=3", "hydra.sweep.dir=population", url=url)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "training 3 runs as one population" in result.stdout + result.stderr
    _check_pareto_study(tmp_path, "population", url, trials=3)


def test_the_storage_command_creates_a_two_objective_study(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    monkeypatch.setenv(storage.URL_ENV, url)
    monkeypatch.delenv(storage.PASSWORD_ENV, raising=False)
    assert storage.main(["two", "maximize", "maximize"]) == 0
    assert len(optuna.load_study(study_name="two", storage=url).directions) == 2
    assert storage.main(["two", "maximise"]) == 2  # not a direction: the usage line
    assert "minimize or maximize" in capsys.readouterr().err
