"""analysis.study_state: what a script needs to resume an Optuna search and reuse its best."""

from __future__ import annotations

import optuna
import pytest

from analysis import study_state


@pytest.fixture
def storage(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="search", storage=url, direction="maximize")
    for bias, lr, value in ((-2.0, 0.1, 0.9), (-5.5, 0.01, 0.95), (-1.0, 0.5, 0.2)):
        study.enqueue_trial({"carry_bias": bias, "optimizer.learning_rate": lr})
        trial = study.ask()
        trial.suggest_float("carry_bias", -20, -1)
        trial.suggest_float("optimizer.learning_rate", 1e-4, 1, log=True)
        study.tell(trial, value)
    study.ask()  # a trial that never finished: it does not count
    return url


def test_left_counts_only_finished_trials(storage, capsys):
    assert study_state.main([storage, "search", "left", "5"]) == 0
    assert capsys.readouterr().out.strip() == "2"
    assert study_state.trials_left(storage, "search", 2) == 0
    assert study_state.trials_left(storage, "another", 4) == 4  # a study not begun yet


def test_left_on_a_database_not_written_yet_creates_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'none.db'}"
    assert study_state.trials_left(url, "search", 3) == 3
    assert not (tmp_path / "none.db").exists()


def test_best_prints_the_best_trials_parameters_as_overrides(storage, capsys):
    assert study_state.main([storage, "search", "best"]) == 0
    assert capsys.readouterr().out.strip() == "carry_bias=-5.5 optimizer.learning_rate=0.01"


@pytest.mark.parametrize("argv, message", [
    (["search", "best"], "has no finished trial"),
    (["search", "left"], "needs the study's budget of trials"),
])
def test_bad_requests_end_in_one_sentence(tmp_path, capsys, argv, message):
    url = f"sqlite:///{tmp_path / 'none.db'}"
    assert study_state.main([url, *argv]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
