"""analysis reads an Optuna study (SQLite, as the hparams search stores it) and plots it."""

from __future__ import annotations

import math

import optuna
import pandas as pd
import pytest

from analysis.__main__ import main


@pytest.fixture()
def storage(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="highway_search", storage=url, direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(trial):
        depth = trial.suggest_int("depth", 1, 50)
        bias = trial.suggest_float("carry_bias", -6.0, 1.0)
        rate = trial.suggest_float("optimizer.learning_rate", 1e-3, 1.0, log=True)
        return 1.0 / (1.0 + abs(bias + 2.0) + depth / 100) + 0.01 * math.log10(rate)

    study.optimize(objective, n_trials=12)
    return url, study


def test_study_is_plotted_and_tabled(storage, tmp_path, capsys):
    url, study = storage
    out = tmp_path / "out"
    assert main(["--optuna", url, "--study", "highway_search", "--out", str(out)]) == 0
    assert (out / "figures" / "optuna.png").exists()
    trials = pd.read_csv(out / "optuna_trials.csv")
    assert len(trials) == 12
    assert {"depth", "carry_bias", "optimizer.learning_rate", "value"} <= set(trials.columns)
    report = (out / "report.md").read_text()
    assert f"best value {study.best_value:.4f}" in report
    assert f"depth = {study.best_params['depth']}" in report
    capsys.readouterr()


def test_missing_database_is_not_created(tmp_path, capsys):
    missing = tmp_path / "nope.db"
    assert main(["--optuna", f"sqlite:///{missing}", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip()
    assert "nope.db" in err and "does not exist" in err and len(err.splitlines()) == 1
    assert not missing.exists()


def test_unknown_study_name_lists_the_studies(storage, tmp_path, capsys):
    url, _ = storage
    assert main(["--optuna", url, "--study", "other", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "'other'" in err and "highway_search" in err


def test_study_without_depth_and_carry_bias_is_refused(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'other.db'}"
    study = optuna.create_study(study_name="unrelated", storage=url)
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    assert main(["--optuna", url, "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip()
    assert "did not search depth and carry_bias" in err and "x" in err
