"""Sweeps end to end: grid folders, failure isolation, skip/resume, SIGTERM, launchers, progress.

Each test runs `python -m highway_study` in its own temporary working directory (so outputs/
lands there) on synthetic data for one or a few tiny epochs.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from compose import compose_config
from faults import fault
from highway_study.runtime import progress
from highway_study.runtime import threads as parallel

FAST = ["data=synthetic", "epochs=1", "tensorboard=false"]


def hs(cwd, *args, timeout=240, hide_mnist=False):
    """Run the CLI in `cwd`; return the CompletedProcess (stdout and stderr captured).

    `hide_mnist`: no $HIGHWAY_STUDY_DATA and an empty cache, so MNIST cannot be found.
    """
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if hide_mnist:
        env.pop("HIGHWAY_STUDY_DATA", None)
        env["XDG_CACHE_HOME"] = str(Path(cwd) / "empty_cache")
    return subprocess.run([sys.executable, "-m", "highway_study", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def run_dirs(sweep_dir: Path) -> dict[str, Path]:
    return {path.name: path for path in sweep_dir.iterdir() if (path / ".hydra").is_dir()}


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def epochs(run_dir: Path) -> list[int]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["epoch"] for line in lines]


# --- experiments: composed in-process, no training -------------------------------------------

@pytest.mark.parametrize("name, runs", [
    ("quickstart", 6), ("blog_baselines", 9), ("blog_depth_bias", 70), ("mnist_residual", 21),
    ("mnist_residual_modern", 42)])
def test_experiment_grid_sizes(name, runs):
    from hydra import compose, initialize_config_dir

    from conftest import REPO
    from highway_study.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"experiment={name}"],
                      return_hydra_config=True)
    assert progress.planned_runs(cfg) == runs
    assert cfg.tags.experiment == name


@pytest.mark.parametrize("name, recipe", [
    ("mnist_residual", ("truncated_normal", "sum", 50)),
    ("mnist_residual_modern", ("glorot_uniform", "mean", 128))])
def test_residual_experiments_use_their_recipe(name, recipe):
    """The two MNIST residual experiments differ in their recipe only (blog vs modern)."""
    cfg = compose_config(f"experiment={name}")
    assert (cfg.model.kernel_initializer, cfg.loss_reduction, cfg.batch_size) == recipe
    assert cfg.data.name == "mnist"


@pytest.mark.parametrize("model, depth", [("plain_fc", 18), ("highway_fc", 18), ("shallow", 1)])
def test_blog_baselines_each_model_brings_its_depth(model, depth):
    from highway_study.config import validate

    cfg = compose_config("experiment=blog_baselines", f"model={model}")
    validate(cfg)  # shallow with any other depth would be refused
    assert (cfg.model.name, cfg.depth, cfg.data.name, cfg.loss_reduction) == (
        model, depth, "mnist", "sum")


def test_depth_1000_is_the_blogs_headline():
    cfg = compose_config("experiment=depth_1000")
    assert (cfg.depth, cfg.carry_bias, cfg.model.name, cfg.data.name) == (
        1000, -20.0, "highway_fc", "mnist")



@pytest.mark.parametrize("name", sorted(p.stem for p in (Path(__file__).resolve().parents[1]
                                                         / "conf" / "experiment").glob("*.yaml")))
def test_every_experiment_writes_to_its_own_fixed_folder(name):
    """Named experiments land in outputs/experiments/<name>/ (no date in the path), so
    running the same command again finds, skips and resumes their runs."""
    from hydra import compose, initialize_config_dir

    from conftest import REPO
    from highway_study.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"experiment={name}"],
                      return_hydra_config=True)
    multirun = str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    folder = cfg.hydra.sweep.dir if multirun else cfg.hydra.run.dir
    assert folder == f"outputs/experiments/{name}"

# --- small helpers: no TensorFlow -------------------------------------------------------------

def test_progress_line_counts_failures_and_estimates_time_left(tmp_path):
    start = 1000.0
    events = [{"event": "start", "total": 9, "time": start - 50},  # an earlier sweep: ignored
              {"event": "end", "status": "failed", "time": start - 40},
              {"event": "start", "total": 4, "time": start}]
    events += [{"event": "end", "status": status, "time": start + 10 * (i + 1)}
               for i, status in enumerate(["completed", "failed", "diverged"])]
    (tmp_path / progress.PROGRESS_FILE).write_text("".join(json.dumps(e) + "\n" for e in events))
    state = progress.read_progress(tmp_path)
    assert (state["total"], state["done"], state["failed"], state["diverged"]) == (4, 3, 1, 1)
    assert progress.progress_line(state) == (
        "sweep progress: 3/4 runs done, 1 failed, 1 diverged, about 10s left")


def test_joblib_jobs_share_the_cores(monkeypatch):
    monkeypatch.delenv(parallel.THREADS_ENV, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    joblib = {"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"}
    assert parallel.job_threads({**joblib, "n_jobs": 2}) == 4
    assert parallel.job_threads({**joblib, "n_jobs": -1}) == 1
    assert parallel.job_threads({"_target_": "hydra._internal.core_plugins.basic_launcher."
                                 "BasicLauncher"}) is None
    monkeypatch.setenv(parallel.THREADS_ENV, "3")
    assert parallel.job_threads({**joblib, "n_jobs": 2}) == 3
    assert parallel.op_threads({**joblib, "n_jobs": 2}) is None  # as many as the job has


def test_population_launchers_give_each_op_one_thread():
    """A population's parts run side by side on the inter-op pool; each op gets one thread."""
    for target in ("hydra_plugins.highway_study_population.PopulationLauncher",
                   "hydra_plugins.highway_study_population.cluster.PopulationSlurmLauncher"):
        assert parallel.op_threads({"_target_": target}) == parallel.POPULATION_OP_THREADS == 1
    assert parallel.op_threads({"_target_": "hydra_plugins.hydra_submitit_launcher."
                                "submitit_launcher.SlurmLauncher"}) is None
    assert parallel.op_threads(None) is None


# --- real sweeps ------------------------------------------------------------------------------

@fault("a sweep in which some runs fail or diverge",
       "`python -m highway_study -m data=synthetic,mnist data.path=/nonexistent ...`",
       "exit 0 (the sweepers need every run to return), and a last line `sweep finished: 4 runs, "
       "2 failed (NAMES), 0 diverged; the exit code stays 0 ...`")
def test_grid_sweep_names_folders_isolates_failures_and_skips_finished_runs(tmp_path):
    args = ["-m", *FAST, "data=synthetic,mnist", "data.path=/nonexistent",
            "data.download=false", "depth=1,2", "hydra.sweep.dir=sweep"]
    first = hs(tmp_path, *args, hide_mnist=True)
    assert first.returncode == 0, first.stderr[-3000:]
    runs = run_dirs(tmp_path / "sweep")
    assert len(runs) == 4
    for name, run_dir in runs.items():
        assert ("depth=1" in name) != ("depth=2" in name), name  # overrides in the folder name
        record = summary(run_dir)
        if "data=mnist" in name:
            assert record["status"] == "failed"
            assert "/nonexistent" in record["error"]
        else:
            assert record["status"] == "completed"
            assert record["config"]["data"]["name"] == "synthetic"
    output = first.stdout + first.stderr
    assert "sweep progress: 4/4 runs done, 2 failed" in output
    last = [line for line in output.splitlines() if "sweep finished:" in line]
    assert len(last) == 1 and "4 runs, 2 failed (" in last[0] and "0 diverged" in last[0]
    assert all(name in last[0] for name in runs if "data=mnist" in name)
    assert "exit code stays 0" in last[0]

    good = [run for name, run in runs.items() if "data=synthetic" in name]
    before = {run: ((run / "summary.json").stat().st_mtime_ns,
                    (run / "metrics.jsonl").read_text()) for run in good}
    second = hs(tmp_path, *args, hide_mnist=True)
    assert second.returncode == 0, second.stderr[-3000:]
    output = second.stdout + second.stderr
    assert output.count("already finished, not trained again") == 2
    for run, (mtime, metrics) in before.items():
        assert (run / "summary.json").stat().st_mtime_ns == mtime  # not retrained
        assert (run / "metrics.jsonl").read_text() == metrics
    assert "sweep progress: 4/4 runs done, 2 failed" in output  # failed runs were tried again
    assert "Nothing was trained" not in output  # the failed ones were

    # A rerun whose every run is finished trains nothing, and says so in one line.
    synthetic_only = [arg.replace("data=synthetic,mnist", "data=synthetic") for arg in args]
    third = hs(tmp_path, *synthetic_only, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
               hide_mnist=True)  # a launcher is not part of the folder names: the same runs
    assert third.returncode == 0, third.stderr[-3000:]
    output = third.stdout + third.stderr
    assert output.count("already finished, not trained again") == 2
    lines = [line for line in output.splitlines() if "Nothing was trained" in line]
    assert len(lines) == 1 and lines[0].endswith(
        "Nothing was trained: all 2 runs of this sweep already had a finished run in sweep, "
        "and a rerun skips finished runs; to train them again, rerun into a new folder, e.g. "
        "hydra.sweep.dir=sweep_2")


@fault("SIGTERM (or Ctrl-C) during training", "`kill -TERM` a run after its first epoch, then the same command",
       "exit 143 (130), summary.json `interrupted`; the rerun resumes after the saved epoch, each epoch recorded once")
def test_sigterm_records_interrupted_and_rerun_resumes_from_last_epoch(tmp_path):
    args = ["data=synthetic", "data.num_examples=10000", "epochs=6", "depth=2",
            "tensorboard=false", "hydra.run.dir=run"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen([sys.executable, "-m", "highway_study", *args], cwd=tmp_path,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and metrics.read_text().count("\n") >= 1):
        assert process.poll() is None and time.monotonic() < deadline, "run ended too early"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    run_dir = tmp_path / "run"
    record = summary(run_dir)
    assert record["status"] == "interrupted"
    assert "SIGTERM" in record["error"]
    done = epochs(run_dir)
    assert done == list(range(1, len(done) + 1)) and 1 <= len(done) < 6
    assert record["epochs"] == len(done)
    assert (run_dir / "checkpoint").is_dir()
    finished_rows = metrics.read_text().splitlines()

    resumed = hs(tmp_path, *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming run after epoch {len(done)}" in resumed.stdout + resumed.stderr
    assert epochs(run_dir) == list(range(1, 7))  # no epoch twice, none lost
    assert metrics.read_text().splitlines()[:len(done)] == finished_rows  # kept, not redone
    assert summary(run_dir)["status"] == "completed"
    assert not (run_dir / "checkpoint").exists()  # removed once training ended
    total = summary(run_dir)["steps"]  # the curve was cut back to the checkpoint: no point twice
    curve = (run_dir / "curve.jsonl").read_text().splitlines()
    points = [json.loads(line)["step"] for line in curve]
    assert points == list(range(0, total, 100)) + [total]


def test_joblib_launcher_runs_two_jobs_in_parallel_workers(tmp_path):
    result = hs(tmp_path, "-m", *FAST, "depth=1,2", "hydra/launcher=joblib",
                "hydra.launcher.n_jobs=2", "hydra.sweep.dir=sweep")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in result.stdout + result.stderr
    runs = run_dirs(tmp_path / "sweep")
    assert sorted(summary(run)["config"]["depth"] for run in runs.values()) == [1, 2]
    assert {summary(run)["status"] for run in runs.values()} == {"completed"}
    share = max(1, (os.cpu_count() or 1) // 2)
    for run in runs.values():  # each job used its share of the cores
        assert (f"TensorFlow threads in this job: {share} per op; ops at once: {share}"
                in (run / "__main__.log").read_text())


def test_submitit_local_launcher_runs_a_two_run_sweep(tmp_path):
    result = hs(tmp_path, "-m", *FAST, "seed=0,1", "depth=1", "hydra/launcher=submitit_local",
                "hydra.launcher.timeout_min=5", "hydra.sweep.dir=sweep")
    assert result.returncode == 0, result.stderr[-3000:]
    runs = run_dirs(tmp_path / "sweep")
    assert sorted(summary(run)["config"]["seed"] for run in runs.values()) == [0, 1]
    assert {summary(run)["status"] for run in runs.values()} == {"completed"}
    assert (tmp_path / "sweep" / ".submitit").is_dir()  # really went through submitit
    # The jobs write their logs under .submitit/; the progress still reaches this console.
    assert "sweep progress: 2/2 runs done, 0 failed, 0 diverged" in result.stdout + result.stderr


@pytest.mark.parametrize("launcher", ["slurm", "population_slurm"])
def test_slurm_launcher_without_slurm_ends_in_one_sentence(tmp_path, launcher):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PATH": str(tmp_path)}  # no srun here
    result = subprocess.run([sys.executable, "-m", "highway_study", "-m", *FAST, "depth=1,2",
                             f"hydra/launcher={launcher}", "hydra.sweep.dir=sweep"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"hydra/launcher={launcher} needs Slurm, but srun and sbatch are not on this machine's PATH: "
        "start the sweep on a Slurm login node, or run it here with hydra/launcher=joblib "
        "(or submitit_local)."]
    assert not (tmp_path / "sweep").exists()  # nothing was launched


@pytest.mark.parametrize("name, target", [
    ("slurm", "submitit_launcher.SlurmLauncher"),
    ("population_slurm", "highway_study_population.cluster.PopulationSlurmLauncher")])
def test_slurm_launcher_config_is_ready_to_use(name, target, tmp_path, monkeypatch):
    from hydra import compose, initialize_config_dir

    from conftest import REPO
    from highway_study.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"hydra/launcher={name}"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith(target)
    if name == "population_slurm":  # submitit takes every parameter (nothing is submitted)
        (tmp_path / "srun").write_text("#!/bin/sh\nexit 1\n")  # submitit looks for it
        (tmp_path / "srun").chmod(0o755)
        monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
        from hydra_plugins.highway_study_population.cluster import PopulationSlurmLauncher

        params = {k: v for k, v in OmegaConf.to_container(launcher, resolve=False).items()
                  if k not in ("_target_", "groups", "min_members")}
        params.update(submitit_folder="unused/%j", name="job")
        sbatch = PopulationSlurmLauncher(**params).executor()._executor._make_submission_file_text(
            "python -m something", "uid")
        assert "#SBATCH --cpus-per-task=4" in sbatch and "#SBATCH --time=720" in sbatch
    assert parallel.job_threads(launcher) == launcher.cpus_per_task
    assert launcher.max_num_timeout > 0  # requeued tasks resume from their checkpoint


@fault("a finished run's folder rerun with another config (an edited experiment file)", "rerun the sweep into the same hydra.sweep.dir",
       "that run is refused in one sentence naming the changed keys; its record is left as it was")
def test_a_finished_run_of_another_config_is_refused_not_overwritten(tmp_path):
    from highway_study import record
    from highway_study.runtime import job

    cfg = compose_config(*FAST, "depth=3")
    old_config = json.loads(json.dumps(OmegaConf.to_container(cfg, resolve=True)))
    old_config["epochs"] = 7
    old_config.pop("seed")  # a key the old code did not have does not count
    record.write_summary(tmp_path, record.Summary(status="completed", config=old_config))
    before = (tmp_path / "summary.json").read_text()
    with pytest.raises(job.ConfigChanged, match=r"differs in epochs: "):
        job.recorded_objective(tmp_path, cfg)
    assert (tmp_path / "summary.json").read_text() == before
    record.write_summary(tmp_path, record.Summary(status="interrupted", config=old_config))
    assert job.recorded_objective(tmp_path, cfg) is None  # unfinished: train (resume) it


@pytest.mark.parametrize("multirun, option", [(True, "hydra.sweep.dir"), (False, "hydra.run.dir")])
def test_the_refusal_names_the_folder_option_of_this_kind_of_run(tmp_path, multirun, option):
    from highway_study import record
    from highway_study.runtime import job

    cfg = compose_config(*FAST, "depth=3")
    old_config = json.loads(json.dumps(OmegaConf.to_container(cfg, resolve=True)))
    old_config["epochs"] = 7
    record.write_summary(tmp_path, record.Summary(status="completed", config=old_config))
    with pytest.raises(job.ConfigChanged) as refusal:
        job.recorded_objective(tmp_path, cfg, multirun)
    assert f"rerun into a new {option} " in str(refusal.value)


@fault("the same command started twice into one run folder (or two sweeps into one folder)",
       "`python -m highway_study ... hydra.run.dir=RUN` while another process works in RUN",
       "the second exits 1 with one sentence (`RUN is in use by another process ...`) and "
       "writes nothing into the folder")
def test_a_second_process_in_the_same_run_folder_is_refused(tmp_path):
    from filelock import FileLock

    from highway_study.runtime.lock import LOCK_FILE

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with FileLock(str(run_dir / LOCK_FILE)):  # another process works there
        second = hs(tmp_path, *FAST, "depth=1", "hydra.run.dir=run")
    assert second.returncode == 1 and "Traceback" not in second.stderr
    lines = [line for line in second.stderr.splitlines() if "in use by another process" in line]
    assert len(lines) == 1, second.stderr[-2000:]
    assert not (run_dir / "metrics.jsonl").exists() and not (run_dir / "summary.json").exists()


@fault("a run folder lock left by a process killed with SIGKILL",
       "`kill -9` a run, then rerun into its folder",
       "the lock is the OS's (flock): it died with its process, the rerun takes it")
def test_a_lock_left_by_a_killed_process_is_stale(tmp_path):
    from highway_study.runtime.lock import LOCK_FILE, RunLocked, run_lock

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from filelock import FileLock; "
         f"lock = FileLock({str(tmp_path / LOCK_FILE)!r}); lock.acquire(); "
         "print('held', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLocked, match="is in use by another process"):
            with run_lock(tmp_path):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
    assert (tmp_path / LOCK_FILE).exists()  # the file stays; its lock died with the process
    with run_lock(tmp_path):
        assert (tmp_path / LOCK_FILE).exists()
    assert not (tmp_path / LOCK_FILE).exists()  # a process that ends normally leaves none


def test_a_lock_file_that_cannot_be_removed_does_not_fail_the_run(tmp_path, monkeypatch):
    """Removing the lock file at the end is tidiness: where the folder refuses it, the run
    still ends normally and the lock is released."""
    from pathlib import Path

    from highway_study.runtime.lock import LOCK_FILE, run_lock

    def refuse(self, missing_ok=False):
        raise PermissionError(f"cannot remove {self}")

    with run_lock(tmp_path):
        monkeypatch.setattr(Path, "unlink", refuse)
    monkeypatch.undo()
    assert (tmp_path / LOCK_FILE).exists()
    with run_lock(tmp_path):  # released: the next run takes it
        pass
