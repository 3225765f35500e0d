"""The Optuna search: persistent SQLite study resumed across runs, PostgreSQL with several
workers, and a database password that never reaches a file or a log."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from faults import fault
from highway_study.runtime import storage

TINY_SEARCH = ["hparams_search=highway_optuna", "data=synthetic", "epochs=1", "tensorboard=false",
               "depth=tag(log, int(interval(1, 3)))"]
PG_URL_ENV = "HIGHWAY_STUDY_TEST_PG_URL"
PG_PASSWORD_ENV = "HIGHWAY_STUDY_TEST_PG_PASSWORD"


def search(cwd, *args, env=None, trials=3):
    """Start the search CLI in `cwd` (a Popen: callers may run several at once)."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    for key in (storage.URL_ENV, storage.PASSWORD_ENV):
        if env is None or key not in env:
            full_env.pop(key, None)
    return subprocess.Popen(
        [sys.executable, "-m", "highway_study", *TINY_SEARCH, f"hydra.sweeper.n_trials={trials}",
         *args], cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)


def finish(process, timeout=300) -> str:
    stdout, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, stderr[-3000:]
    return stdout + stderr


def complete_trials(url: str, study_name: str) -> int:
    import optuna

    study = optuna.load_study(study_name=study_name, storage=url)
    return sum(trial.state == optuna.trial.TrialState.COMPLETE for trial in study.trials)


def compose_with_hydra(*overrides):
    from hydra import compose, initialize_config_dir

    from conftest import REPO
    from highway_study.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


def test_search_config_saves_no_database_url(monkeypatch):
    monkeypatch.setenv(storage.URL_ENV, "postgresql://optuna@db.example/highway")
    cfg = compose_with_hydra("hparams_search=highway_optuna")
    assert cfg.hydra.sweeper.direction == "maximize"  # maximise validation accuracy
    params = cfg.hydra.sweeper.params
    assert params.depth == "tag(log, int(interval(1, 1000)))"
    assert params.carry_bias == "interval(-20.0, -1.0)"
    assert params["optimizer.learning_rate"].startswith("tag(log, interval(")
    assert dict(cfg.hydra.sweeper.storage) == {"_target_": "highway_study.runtime.storage.optuna_storage"}


def test_storage_url_takes_the_password_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(storage.URL_ENV, "postgresql://optuna@db.example:5432/highway")
    monkeypatch.setenv(storage.PASSWORD_ENV, "s3cret-pw")
    url = storage.storage_url()
    assert url == "postgresql://optuna:s3cret-pw@db.example:5432/highway"
    assert "s3cret-pw" not in storage.describe(url)

    monkeypatch.delenv(storage.URL_ENV)
    monkeypatch.delenv(storage.PASSWORD_ENV)
    monkeypatch.chdir(tmp_path)
    assert storage.storage_url() == storage.DEFAULT_URL
    assert (tmp_path / "outputs").is_dir()  # SQLite needs the folder to exist

    monkeypatch.setenv(storage.URL_ENV, "not a url")
    with pytest.raises(storage.StorageError, match=storage.URL_ENV):
        storage.storage_url()


@fault("an Optuna search rerun to continue (or a second worker started the same way)",
       "`python -m highway_study hparams_search=highway_optuna` twice",
       "the second proposes new points (the sampler seed is no longer fixed), joining the study")
def test_sqlite_search_stops_and_resumes_in_the_same_study(tmp_path):
    first = finish(search(tmp_path, "hydra.sweep.dir=first", trials=3))
    # A fresh search says so, not Optuna's "Using an existing study" (the check made it).
    assert "a new study in" in first and "Using an existing study" not in first
    db = tmp_path / "outputs" / "optuna.db"
    assert db.exists()  # the default storage, under outputs/
    url = f"sqlite:///{db}"
    study_name = "depth_bias_lr_highway_fc_synthetic"  # the default name says what is searched
    assert complete_trials(url, study_name) == 3

    output = finish(search(tmp_path, "hydra.sweep.dir=second", trials=2))
    assert complete_trials(url, study_name) == 5  # same study, 3 + 2 trials
    assert "sweep progress: 2/2 runs done" in output
    assert "Using an existing study" in output and "a new study in" not in output
    assert len([p for p in (tmp_path / "second").iterdir() if (p / "summary.json").exists()]) == 2
    points = [tuple(sorted(trial.params.items())) for trial in trials(url, study_name)]
    assert len(set(points)) == 5  # the rerun did not propose the first run's points again

    # Another fixed setting would join trials it cannot be compared with: refused at once.
    refused = search(tmp_path, "hydra.sweep.dir=third", "epochs=2", trials=2)
    stdout, stderr = refused.communicate(timeout=120)
    assert refused.returncode == 2 and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert f"Optuna study '{study_name}'" in stderr and "epochs (was 1, now 2)" in stderr
    assert "hydra.sweeper.study_name=" in stderr
    assert complete_trials(url, study_name) == 5  # no trial was asked for
    assert not (tmp_path / "third").exists() or not any((tmp_path / "third").glob("*/summary.json"))


def trials(url: str, study_name: str = "depth_bias_lr_highway_fc_synthetic"):
    import optuna

    return optuna.load_study(study_name=study_name, storage=url).trials


@fault("SIGTERM to an Optuna search while a trial trains",
       "`python -m highway_study hparams_search=highway_optuna ...`, SIGTERM during trial 0",
       "exit 143; the trial is marked FAIL at exit, not left RUNNING")
def test_an_interrupted_trial_does_not_stay_running(tmp_path):
    process = search(tmp_path, "data.num_examples=20000", "epochs=8", "hydra.sweep.dir=sweep",
                     trials=2)
    deadline = time.monotonic() + 240
    while not list((tmp_path / "sweep").glob("*/metrics.jsonl")):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    import optuna

    states = [trial.state for trial in trials(f"sqlite:///{tmp_path / 'outputs' / 'optuna.db'}")]
    assert states == [optuna.trial.TrialState.FAIL]
    # What a rerun does, truthfully: new trials, not this one resumed.
    said = [line for line in stderr.splitlines() if "interrupted by SIGTERM" in line]
    assert len(said) == 1 and said[0].endswith(
        "rerunning the same command continues the Optuna study with new trials (it does not "
        "resume this one).")


@fault("an Optuna worker killed with SIGKILL (or its machine lost) mid-trial",
       "any worker of the same study asking for its next trial",
       "the dead worker's trial, without a heartbeat for twice `heartbeat_seconds`, is marked FAIL")
def test_a_trial_whose_worker_died_is_marked_failed_by_the_next_ask(tmp_path, monkeypatch):
    import optuna
    import sqlalchemy

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    monkeypatch.setenv(storage.URL_ENV, url)
    dead = optuna.storages.RDBStorage(url, heartbeat_interval=60)  # a worker without guards
    study = optuna.create_study(study_name="s", storage=dead)
    orphan = study.ask()
    dead.record_heartbeat(orphan._trial_id)
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as connection:  # its last heartbeat, long ago
        connection.execute(sqlalchemy.text(
            "UPDATE trial_heartbeats SET heartbeat = '2000-01-01 00:00:00'"))
    engine.dispose()

    alive = optuna.load_study(study_name="s", storage=storage.optuna_storage(heartbeat_seconds=60))
    fresh = alive.ask()
    alive.tell(fresh, 0.5)
    states = {trial.number: trial.state for trial in trials(url, "s")}
    assert states == {0: optuna.trial.TrialState.FAIL, 1: optuna.trial.TrialState.COMPLETE}


@fault("`hydra.sweeper.n_trials=0` (or `hydra.sweeper.n_jobs=0`)",
       "`python -m highway_study hparams_search=highway_optuna hydra.sweeper.n_trials=0`",
       "exit 2 and one line: `Invalid config: hydra.sweeper.n_trials=0 is not allowed: use an "
       "integer >= 1.`")
@pytest.mark.parametrize("key", ["n_trials", "n_jobs"])
def test_a_search_of_no_trials_is_refused_in_one_sentence(tmp_path, key):
    process = search(tmp_path, f"hydra.sweeper.{key}=0", "hydra.sweep.dir=sweep")
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 2
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines == [f"Invalid config: hydra.sweeper.{key}=0 is not allowed: use an integer >= 1."]


@fault("`python -m highway_study.runtime.storage` with a bad URL in $HIGHWAY_STUDY_OPTUNA_URL",
       "`HIGHWAY_STUDY_OPTUNA_URL='not a url' python -m highway_study.runtime.storage NAME` "
       "(also `foo://x`, an unreachable server)",
       "one sentence without the password; exit 2 for a malformed URL or unknown driver, 1 for "
       "a database that cannot be reached")
@pytest.mark.parametrize("url, code, says", [
    ("not a url", 2, "is not a database URL"),
    ("foo://host/db", 2, "Can't load plugin: sqlalchemy.dialects:foo"),
    ("postgresql://user@127.0.0.1:1/db", 1, "cannot be used: OperationalError"),
])
def test_storage_command_reports_a_bad_url_in_one_sentence(monkeypatch, capsys, url, code, says):
    monkeypatch.setenv(storage.URL_ENV, url)
    monkeypatch.setenv(storage.PASSWORD_ENV, "s3cret-pw")
    assert storage.main(["study"]) == code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and says in lines[0] and "s3cret-pw" not in err


def test_default_study_name_says_what_is_searched():
    from compose import compose_multirun

    names = {(model, data): compose_multirun("hparams_search=highway_optuna", f"model={model}",
                                             f"data={data}").hydra.sweeper.study_name
             for model in ("highway_fc", "plain_fc") for data in ("digits", "mnist")}
    assert names[("highway_fc", "digits")] == "depth_bias_lr_highway_fc_digits"
    assert names[("highway_fc", "mnist")] == "depth_bias_lr_highway_fc_mnist"
    assert len(set(names.values())) == 4


def add_finished_trial(url, study_name):
    import optuna

    study = optuna.load_study(study_name=study_name, storage=url)
    study.add_trial(optuna.trial.create_trial(
        params={"depth": 2}, distributions={
            "depth": optuna.distributions.IntLogUniformDistribution(1, 1000)}, value=0.5))


def test_a_study_refuses_trials_of_another_search(tmp_path, monkeypatch):
    """The digits search, then the MNIST one named into the same study (the old default
    name made every search share one): refused, naming what differs; the same search again,
    or any search into a study without trials, goes on."""
    from compose import compose_multirun
    from highway_study.runtime.study_guard import StudyMismatch, check_study

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    monkeypatch.setenv(storage.URL_ENV, url)
    name = "hydra.sweeper.study_name=shared"
    digits = compose_multirun("hparams_search=highway_optuna", name)
    check_study(digits)  # a new study records what its search fixed and searches
    check_study(compose_multirun("hparams_search=highway_optuna", name, "data=mnist"))
    # ... which a study without trials may still change; one with a trial may not:
    check_study(digits)
    add_finished_trial(url, "shared")
    check_study(compose_multirun("hparams_search=highway_optuna", name, "data.path=/elsewhere",
                                 "tensorboard=false"))  # where data lives and logs: no change
    with pytest.raises(StudyMismatch, match=r"data\.name \(was digits, now mnist\)"):
        check_study(compose_multirun("hparams_search=highway_optuna", name, "data=mnist"))
    with pytest.raises(StudyMismatch, match=r"depth \(was IntLogUniform.*high=1000.*now "
                                            r"IntLogUniform.*high=100,"):
        check_study(compose_multirun("hparams_search=highway_optuna", name,
                                     "depth=tag(log, int(interval(1, 100)))"))
    with pytest.raises(StudyMismatch, match=r"holds 1 trial of another search \(batch_size "
                                            r"\(was 32, now 50\); loss_reduction .*; and \d+ more"):
        check_study(compose_multirun("hparams_search=highway_optuna", name, "setup=blog"))


def postgres_or_skip() -> tuple[str, str]:
    url, password = os.environ.get(PG_URL_ENV), os.environ.get(PG_PASSWORD_ENV, "")
    if not url:
        pytest.skip(f"no PostgreSQL server for this test (.ci/run starts one; set {PG_URL_ENV})")
    import sqlalchemy

    engine = sqlalchemy.create_engine(
        sqlalchemy.engine.make_url(url).set(password=password or None))
    try:
        with engine.connect():
            pass
    except Exception as error:  # noqa: BLE001 - any connection problem means: skip
        pytest.skip(f"PostgreSQL at {PG_URL_ENV} does not answer: {type(error).__name__}")
    finally:
        engine.dispose()
    return url, password


def test_two_workers_share_one_study_in_postgresql(tmp_path, monkeypatch):
    url, password = postgres_or_skip()
    env = {storage.URL_ENV: url, storage.PASSWORD_ENV: password}
    study_name = f"test_{uuid.uuid4().hex[:10]}"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    storage.create_study(study_name)  # as docs/sweeps.md says: once, before the workers
    try:
        workers = [search(tmp_path, f"hydra.sweep.dir=worker{i}",
                          f"hydra.sweeper.study_name={study_name}", env=env, trials=1)
                   for i in range(2)]  # started together, running at the same time
        outputs = [finish(worker) for worker in workers]
        assert complete_trials(storage.storage_url(), study_name) == 2  # one trial per worker

        if password:  # the secret is in no file the runs wrote and in no log line
            for path in Path(tmp_path).rglob("*"):
                if path.is_file():
                    assert password not in path.read_text(errors="ignore"), path
            assert all(password not in output for output in outputs)
    finally:
        import optuna

        optuna.delete_study(study_name=study_name, storage=storage.storage_url())
