"""Faults of the runtime around a run: its folder, memory, the Optuna storage, the launcher's
options, a second sweep into a busy folder and an interrupted Optuna search. Each ends in
one sentence with the right exit code and a truthful record."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from faults import fault
from highway_study.runtime import storage
from highway_study.runtime.lock import LOCK_FILE, SWEEP_LOCK_FILE, run_lock, sweep_lock

FAST = ["data=synthetic", "epochs=1", "depth=1", "tensorboard=false"]
SEARCH = ["hparams_search=highway_optuna", "data=synthetic", "epochs=1", "tensorboard=false",
          "depth=tag(log, int(interval(1, 3)))", "hydra.sweeper.n_trials=2"]
# The CLI with os.access answering "not writable" for paths ending in $DENY: a read-only
# folder or file even for root, who may write anywhere (the tests run as root here).
DENYING_CLI = (
    "import os, sys\n"
    "real, deny = os.access, os.environ['DENY']\n"
    "os.access = lambda p, m, **k: False if str(p).endswith(deny) and m & os.W_OK "
    "else real(p, m, **k)\n"
    "sys.argv[0] = 'highway_study'\n"
    "from highway_study.__main__ import cli\n"
    "cli()\n")


def env(**extra) -> dict:
    full = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **extra}
    for key in (storage.URL_ENV, storage.PASSWORD_ENV, "HYDRA_FULL_ERROR"):
        if key not in extra:
            full.pop(key, None)
    return full


def hs(cwd, *args, deny=None, timeout=240, **extra):
    """Run the CLI in `cwd` (with os.access denying writes to paths ending in `deny`)."""
    command = [sys.executable, "-m", "highway_study"] if deny is None else \
        [sys.executable, "-c", DENYING_CLI]
    extra = {**extra, **({"DENY": deny} if deny is not None else {})}
    return subprocess.run([*command, *args], cwd=cwd, env=env(**extra), capture_output=True,
                          text=True, timeout=timeout)


def lines(text: str) -> list[str]:
    """Our lines of stderr, without TensorFlow's C++ start-up chatter."""
    noise = ("WARNING: All log messages before absl", "cudart_stub", "cuda_platform",
             "cuda_executor", "computation_placer")
    return [line for line in text.splitlines() if line.strip()
            and not any(word in line for word in noise)]


# --- 1. a run or sweep folder that cannot be one -----------------------------------------

@fault("`hydra.run.dir` (or `hydra.sweep.dir`) that is an existing file or lies under one",
       "`python -m highway_study hydra.run.dir=notes.txt` (or `-m ... hydra.sweep.dir=notes.txt`)",
       "exit 2 and one line: `Invalid config: hydra.run.dir=notes.txt is not allowed: "
       "notes.txt is a file, not a folder; ...`; the file is untouched")
@pytest.mark.parametrize("option, value, sweep", [
    ("hydra.run.dir", "notes.txt", False), ("hydra.run.dir", "notes.txt/run", False),
    ("hydra.sweep.dir", "notes.txt", True)])
def test_a_folder_that_is_a_file_is_refused_in_one_sentence(tmp_path, option, value, sweep):
    (tmp_path / "notes.txt").write_text("keep me\n")
    result = hs(tmp_path, *(["-m", "seed=0,1"] if sweep else []), *FAST, f"{option}={value}")
    assert result.returncode == 2, result.stderr[-2000:]
    assert lines(result.stderr) == [
        f"Invalid config: {option}={value} is not allowed: notes.txt is a file, not a folder; "
        "give a new folder or an existing one."]
    assert (tmp_path / "notes.txt").read_text() == "keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # nothing else written


@fault("`hydra.run.dir` (or `hydra.sweep.dir`) in a folder this user cannot write",
       "`python -m highway_study hydra.run.dir=readonly/run` (`chmod 555 readonly`)",
       "exit 2 and one line: `Invalid config: hydra.run.dir=readonly/run is not allowed: "
       "readonly is not writable; ...`")
@pytest.mark.parametrize("option, sweep", [("hydra.run.dir", False), ("hydra.sweep.dir", True)])
def test_a_read_only_folder_is_refused_in_one_sentence(tmp_path, option, sweep):
    (tmp_path / "readonly").mkdir()
    result = hs(tmp_path, *(["-m", "seed=0,1"] if sweep else []), *FAST,
                f"{option}=readonly/run", deny="readonly")
    assert result.returncode == 2, result.stderr[-2000:]
    assert lines(result.stderr) == [
        f"Invalid config: {option}=readonly/run is not allowed: readonly is not writable; "
        "give a folder this user can write to."]
    assert not any((tmp_path / "readonly").iterdir())


# --- 2. a single run out of memory -------------------------------------------------------

@fault("a single run that runs out of memory (`depth=100000` under `ulimit -v 4000000`)",
       "`python -m highway_study data=synthetic depth=100000` with a memory limit",
       "exit 1 and one sentence (`RUN: the run ran out of memory (ResourceExhaustedError: ...): "
       "use a smaller depth, width or batch_size; ...`), no traceback unless HYDRA_FULL_ERROR=1; "
       "summary.json says failed with the error")
@pytest.mark.skipif(sys.platform != "linux", reason="ulimit -v limits memory on Linux")
def test_a_single_run_out_of_memory_ends_in_one_sentence(tmp_path):
    def run(folder, **extra):
        command = (f"ulimit -v 4000000; exec {sys.executable} -m highway_study data=synthetic "
                   f"depth=100000 epochs=1 tensorboard=false hydra.run.dir={folder}")
        return subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env(**extra),
                              capture_output=True, text=True, timeout=300)

    result = run("run")
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "Error executing job" not in result.stderr
    said = [line for line in lines(result.stderr) if "[INFO]" not in line]
    assert len(said) == 1, result.stderr[-3000:]
    assert said[0].startswith(f"{tmp_path / 'run'}: the run ran out of memory (")
    assert said[0].endswith("use a smaller depth, width or batch_size; summary.json records "
                            "it as failed.")
    record = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert record["status"] == "failed" and ("ResourceExhausted" in record["error"]
                                             or "MemoryError" in record["error"])

    full = run("run_full", HYDRA_FULL_ERROR="1")  # the full report, as for other errors
    assert full.returncode == 1 and "Traceback" in full.stderr


# --- 3. an Optuna storage that cannot be written -----------------------------------------

def _study_trials(db: Path) -> int:
    import optuna

    summaries = optuna.get_all_study_summaries(f"sqlite:///{db}")
    return sum(summary.n_trials for summary in summaries)


def _a_study_file(tmp_path) -> Path:
    import optuna

    db = tmp_path / "ro.db"
    optuna.create_study(study_name="other", storage=f"sqlite:///{db}")
    return db


@fault("an Optuna storage that is a read-only SQLite file (or in a read-only folder)",
       "`python -m highway_study hparams_search=highway_optuna hydra.sweeper.storage=sqlite:///ro.db` "
       "(`chmod 444 ro.db`)",
       "exit 2 and one line: `The Optuna database ro.db is not writable ...`, before any trial")
def test_a_read_only_optuna_file_is_refused_before_any_trial(tmp_path):
    db = _a_study_file(tmp_path)
    result = hs(tmp_path, *SEARCH, "hydra.sweeper.storage=sqlite:///ro.db",
                "hydra.sweep.dir=sweep", deny="ro.db")
    assert result.returncode == 2, result.stderr[-3000:]
    assert lines(result.stderr) == [
        "The Optuna database ro.db is not writable (SQLite needs to write the file and its "
        "folder): make both writable, or give the search another storage "
        "(hydra.sweeper.storage or $HIGHWAY_STUDY_OPTUNA_URL)."]
    assert _study_trials(db) == 0 and not (tmp_path / "sweep").exists()


def test_sqlites_own_refusal_to_write_is_the_same_sentence(tmp_path):
    """Where os.access cannot tell (a read-only mount, SQLite opened read-only), SQLite's own
    refusal is caught: here a database opened read-only, which refuses root too."""
    db = _a_study_file(tmp_path)
    url = f"sqlite:///file:{db}?mode=ro&uri=true"
    result = hs(tmp_path, *SEARCH, f"hydra.sweeper.storage='{url}'", "hydra.sweep.dir=sweep")
    assert result.returncode == 2, result.stderr[-3000:]
    assert lines(result.stderr) == [
        f"The Optuna database {url} is not writable (SQLite needs to write the file and its "
        "folder): make both writable, or give the search another storage "
        "(hydra.sweeper.storage or $HIGHWAY_STUDY_OPTUNA_URL)."]
    assert _study_trials(db) == 0 and not (tmp_path / "sweep").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_of_the_optuna_file_is_refused(tmp_path):
    db = _a_study_file(tmp_path)
    tmp_path.chmod(0o555)
    try:
        result = hs(tmp_path, *SEARCH, "hydra.sweeper.storage=sqlite:///ro.db",
                    "hydra.sweep.dir=/tmp/unused_sweep")
    finally:
        tmp_path.chmod(0o755)
    assert result.returncode == 2 and "The Optuna database ro.db is not writable" in result.stderr
    assert _study_trials(db) == 0


def test_the_default_storage_factory_is_checked_too(tmp_path, monkeypatch):
    from compose import compose_multirun
    from highway_study.runtime.study_guard import check_study

    monkeypatch.setenv(storage.URL_ENV, f"sqlite:///{tmp_path / 'ro.db'}")
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, m, **k: False if str(p).endswith("ro.db")
                        else real(p, m, **k))
    (tmp_path / "ro.db").touch()
    with pytest.raises(storage.StorageError, match=r"ro\.db is not writable"):
        check_study(compose_multirun("hparams_search=highway_optuna", "data=synthetic"))


# --- 4. the population launcher's options ------------------------------------------------

@fault("a population launcher option that is not one (`hydra.launcher.groups=abc`, `0`, `-1`, "
       "`hydra.launcher.min_members=0`)",
       "`python -m highway_study -m seed=0,1 hydra.launcher.groups=-1`",
       "exit 2 and one line: `Invalid config: hydra.launcher.groups=-1 is not allowed: use an "
       "integer >= 1, or null for the default ...`, before anything trains")
@pytest.mark.parametrize("launcher, option, allowed", [
    ("population", "groups=abc", "use an integer >= 1, or null for the default (one part per core)."),
    ("population", "groups=0", "use an integer >= 1, or null for the default (one part per core)."),
    ("population", "groups=-1", "use an integer >= 1, or null for the default (one part per core)."),
    ("population", "min_members=0", "use an integer >= 2 (the smallest group trained together)."),
    ("population_local", "groups=0", "use an integer >= 1, or null for the default (one part per core)."),
])
def test_bad_launcher_options_are_refused_before_anything_trains(tmp_path, launcher, option,
                                                                 allowed):
    result = hs(tmp_path, "-m", *FAST, "seed=0,1", f"hydra/launcher={launcher}",
                f"hydra.launcher.{option}", "hydra.sweep.dir=sweep")
    assert result.returncode == 2, result.stderr[-3000:]
    assert lines(result.stderr) == [
        f"Invalid config: hydra.launcher.{option} is not allowed: {allowed}"]
    assert not (tmp_path / "sweep").exists()


def test_the_launcher_checks_its_options_when_built_directly():
    from hydra_plugins.highway_study_population import PopulationLauncher

    from highway_study.config import ConfigError

    with pytest.raises(ConfigError, match=r"hydra.launcher.min_members=1 is not allowed"):
        PopulationLauncher(groups=None, min_members=1)
    assert PopulationLauncher(groups=3, min_members=2).groups == 3


# --- 5. two sweeps into one folder -------------------------------------------------------

@fault("two sweeps into one folder at the same time (any launcher; or two Optuna workers "
       "started in the same second with the default folder)",
       "`python -m highway_study -m ... hydra.sweep.dir=DIR` while another sweep works in DIR",
       "the second exits 1 with one line (`hydra.sweep.dir=DIR is in use by another sweep that "
       "is still running: ...`) and writes nothing; the first's progress counts only its runs")
@pytest.mark.parametrize("args", [
    ["-m", *FAST, "seed=0,1", "hydra/launcher=basic"],
    ["-m", *FAST, "seed=0,1"],  # the population launcher, the default
    SEARCH,
], ids=["basic", "population", "optuna"])
def test_a_second_sweep_into_a_busy_folder_exits_1(tmp_path, args):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    held = sweep_lock(sweep)  # another sweep works there
    try:
        result = hs(tmp_path, *args, "hydra.sweep.dir=sweep")
        assert [p.name for p in sweep.iterdir()] == [SWEEP_LOCK_FILE]  # no progress, no runs
    finally:
        held.release()
    assert result.returncode == 1, result.stderr[-3000:]
    assert lines(result.stderr) == [
        "hydra.sweep.dir=sweep is in use by another sweep that is still running: wait for it "
        "to end, or give this sweep another folder (e.g. hydra.sweep.dir=sweep_2)."]
    assert list(sweep.iterdir()) == []  # the holder's file went with its release


def test_two_sweeps_started_together_keep_their_counts_apart(tmp_path):
    args = ["-m", *FAST, "epochs=3", "data.num_examples=4000", "seed=0,1,2",
            "hydra.sweep.dir=sweep"]
    first = subprocess.Popen([sys.executable, "-m", "highway_study", *args], cwd=tmp_path,
                             env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "sweep" / "progress.jsonl").exists():  # it holds the folder now
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.05)
    second = hs(tmp_path, *args)
    out, err = first.communicate(timeout=300)
    assert second.returncode == 1 and "is in use by another sweep" in second.stderr
    assert first.returncode == 0, err[-3000:]
    final = [line for line in (out + err).splitlines() if "sweep finished:" in line]
    assert len(final) == 1 and final[0].endswith("sweep finished: 3 runs, 0 failed, 0 diverged")
    assert "sweep progress: 3/3 runs done, 0 failed" in out + err
    events = [json.loads(line) for line in
              (tmp_path / "sweep" / "progress.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events].count("start") == 1  # the second wrote nothing
    sweep_lock(tmp_path / "sweep").release()  # let go at the end: free to take


# --- 6. an interrupted Optuna search -----------------------------------------------------

@fault("SIGTERM to an Optuna search whose batch trains as one population",
       "`python -m highway_study hparams_search=bias_lr_optuna hydra.sweeper.n_jobs=2`, SIGTERM",
       "exit 143; each trial's summary.json says interrupted, and the message says a rerun "
       "continues the study with new trials (grids and single runs: a rerun resumes)")
def test_an_interrupted_optuna_population_says_what_a_rerun_does(tmp_path):
    args = ["hparams_search=bias_lr_optuna", "data=synthetic", "data.num_examples=20000",
            "depth=2", "epochs=8", "tensorboard=false", "hydra.sweeper.n_trials=2",
            "hydra.sweeper.n_jobs=2", "hydra.sweep.dir=sweep"]
    process = subprocess.Popen([sys.executable, "-m", "highway_study", *args], cwd=tmp_path,
                               env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 240
    while not list((tmp_path / "sweep").glob("*/metrics.jsonl")):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    said = [line for line in stderr.splitlines() if "interrupted by SIGTERM" in line]
    assert len(said) == 2, stderr[-3000:]
    for line in said:
        assert line.endswith("this trial stays as a record with status interrupted, and "
                             "rerunning the same command continues the Optuna study with new "
                             "trials (it does not resume this one).")
        assert "to resume" not in line
    records = [json.loads(p.read_text()) for p in (tmp_path / "sweep").glob("*/summary.json")]
    assert [r["status"] for r in records] == ["interrupted", "interrupted"]


def test_an_interrupted_grid_run_still_says_a_rerun_resumes(tmp_path):
    from hydra.core.hydra_config import HydraConfig

    from compose import compose_config
    from highway_study.runtime import job

    previous = HydraConfig.instance().cfg
    HydraConfig.instance().cfg = None  # no sweep: a single run
    try:
        message = job.record_interruption(tmp_path, compose_config(*FAST), "SIGTERM")
    finally:
        HydraConfig.instance().cfg = previous
    assert message.endswith("rerun the same command with this folder as hydra.run.dir (or its "
                            "sweep's hydra.sweep.dir) to resume.")
