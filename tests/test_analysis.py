"""analysis: a fabricated sweep with known numbers -> runs.csv, figures and report.md.

The sweep is written here by hand (summary.json, metrics.jsonl), with several seeds, a
diverged cell, a failed cell, a half-written run, corrupt JSON and unrelated records, so
every number the analysis prints can be checked against what was fabricated.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from analysis.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ["accuracy_heatmap", "epochs_heatmap", "accuracy_vs_depth", "learning_curves",
           "gate_activity", "effective_depth", "lesion"]


def config(model, depth, carry_bias, seed):
    return {
        "model": {"name": model, "activation": "relu"},
        "data": {"name": "synthetic", "val_size": 100},
        "optimizer": {"name": "sgd", "learning_rate": 0.1},
        "depth": depth, "carry_bias": float(carry_bias),
        "width": 71 if model == "plain_fc" else 50,
        "epochs": 3, "seed": seed, "threshold": 0.9, "lesion_every": 0, "tags": {},
    }


def write_run(folder, model, depth, carry_bias, seed, val=(), test=None, gates=(),
              status="completed", lesion=None):
    """One run folder as training writes it: .hydra/, metrics.jsonl, summary.json."""
    folder.mkdir(parents=True)
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "config.yaml").write_text("depth: %d\n" % depth)
    cfg = config(model, depth, carry_bias, seed)
    with open(folder / "metrics.jsonl", "w") as stream:
        for epoch, accuracy in enumerate(val, start=1):
            stream.write(json.dumps({"epoch": epoch, "step": 10 * epoch, "val_accuracy": accuracy,
                                     "val_loss": 1.0, "gate_activity": list(gates)}) + "\n")
    if status == "failed":
        summary = {"schema": 1, "status": "failed", "error": "boom", "config": cfg}
    else:
        finite = [v for v in val if v is not None]
        summary = {
            "schema": 1, "status": status, "error": None, "test_loss": None,
            "test_accuracy": test, "best_val_accuracy": max(finite) if finite else None,
            "final_val_accuracy": val[-1] if val else None, "threshold": 0.9,
            "epochs_to_threshold": None, "steps_to_threshold": None, "epochs": len(val),
            "steps": 10 * len(val), "params": 1000 * depth, "wall_seconds": 1.5,
            "gate_activity": list(gates), "lesion": lesion, "config": cfg,
        }
    (folder / "summary.json").write_text(json.dumps(summary))


# (model, depth, carry_bias, seed) -> (validation accuracy per epoch, test accuracy, gates)
RUNS = {
    ("highway_fc", 2, -1, 0): ([0.5, 0.85, 0.92], 0.95, [0.5, 0.05]),
    ("highway_fc", 2, -1, 1): ([0.6, 0.91, 0.94], 0.93, [0.3, 0.2]),
    ("highway_fc", 2, -3, 0): ([0.4, 0.7, 0.88], 0.91, [0.02, 0.03]),
    ("highway_fc", 2, -3, 1): ([0.5, 0.8, 0.9], 0.89, [0.15, 0.01]),
    ("highway_fc", 4, -3, 0): ([0.3, 0.6, 0.88], 0.90, [0.2, 0.05, 0.3, 0.01]),
    ("highway_fc", 4, -3, 1): ([0.3, 0.5, 0.80], 0.86, [0.1, 0.12, 0.3, 0.4]),
    ("plain_fc", 2, -2, 0): ([0.5, 0.7, 0.78], 0.80, []),
    ("plain_fc", 2, -2, 1): ([0.4, 0.6, 0.68], 0.70, []),
    ("shallow", 1, -2, 0): ([0.7, 0.8, 0.86], 0.85, []),
}
LESION = [{"layer": 0, "val_accuracy": 0.80}, {"layer": 2, "val_accuracy": 0.86}]


def fabricate(root: Path) -> Path:
    sweep = root / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    for (model, depth, bias, seed), (val, test, gates) in RUNS.items():
        lesion = LESION if (model, depth, bias, seed) == ("highway_fc", 4, -3, 0) else None
        write_run(sweep / f"{model},depth={depth},carry_bias={bias},seed={seed}",
                  model, depth, bias, seed, val, test, gates, lesion=lesion)
    for seed in (0, 1):  # a diverged cell and a failed cell
        write_run(sweep / f"highway_fc,depth=4,carry_bias=-1,seed={seed}", "highway_fc", 4,
                  -1, seed, val=[0.2, None], status="diverged")
        write_run(sweep / f"plain_fc,depth=4,seed={seed}", "plain_fc", 4, -2, seed,
                  status="failed")
    half = sweep / "half_written"  # killed before its summary
    write_run(half, "highway_fc", 8, -1, 0, val=[0.5], test=0.5, gates=[0.1])
    (half / "summary.json").unlink()
    (sweep / "corrupt").mkdir()
    (sweep / "corrupt" / "summary.json").write_text('{"schema": 1, "status": "comp')
    (sweep / "unrelated").mkdir()
    (sweep / "unrelated" / "summary.json").write_text('{"accuracy": 0.5}')
    (sweep / "future").mkdir()
    (sweep / "future" / "summary.json").write_text('{"schema": 99, "status": "completed"}')
    (sweep / "not_a_run").mkdir()  # an unrelated folder without any record is ignored
    return sweep


def mean_sd(values):
    return statistics.mean(values), statistics.stdev(values)


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """The fabricated sweep analysed once, by the CLI in a fresh interpreter."""
    root = tmp_path_factory.mktemp("fabricated")
    sweep = fabricate(root)
    out = root / "out"
    probe = ("import runpy, sys; sys.argv = ['analysis', sys.argv[1], '--out', sys.argv[2]]\n"
             "try:\n    runpy.run_module('analysis', run_name='__main__')\n"
             "except SystemExit as stop:\n    code = stop.code\n"
             "print('TENSORFLOW_LOADED', 'tensorflow' in sys.modules)\nsys.exit(code)")
    result = subprocess.run([sys.executable, "-c", probe, str(sweep), str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    return sweep, out, result


def test_analysis_never_imports_tensorflow(analysed):
    _, _, result = analysed
    assert result.returncode == 0, result.stderr
    assert "TENSORFLOW_LOADED False" in result.stdout


def test_unusable_folders_are_named_in_one_warning(analysed):
    _, _, result = analysed
    assert result.stderr.count("warning:") == 1
    assert "skipped 4 folders" in result.stderr
    for name in ("half_written", "corrupt", "unrelated", "future"):
        assert name in result.stderr
    assert "not_a_run" not in result.stderr and "Traceback" not in result.stderr


def test_runs_table_holds_every_finished_run(analysed):
    _, out, _ = analysed
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == len(RUNS) + 4
    for column in ("run", "model", "data", "depth", "carry_bias", "seed", "width", "status",
                   "test_accuracy", "best_val_accuracy", "epochs_to_threshold", "params",
                   "wall_seconds", "effective_depth"):
        assert column in runs.columns
    assert "optimizer.learning_rate" not in runs.columns  # the same in every run
    assert runs["status"].value_counts().to_dict() == {"completed": 9, "diverged": 2,
                                                       "failed": 2}
    for (model, depth, bias, seed), (val, test, gates) in RUNS.items():
        row = runs[(runs["model"] == model) & (runs["depth"] == depth)
                   & (runs["carry_bias"] == bias) & (runs["seed"] == seed)]
        assert len(row) == 1
        assert row["test_accuracy"].item() == pytest.approx(test)
        assert row["best_val_accuracy"].item() == pytest.approx(max(val))
        reached = [epoch for epoch, v in enumerate(val, 1) if v >= 0.9]
        expected = reached[0] if reached else None
        got = row["epochs_to_threshold"].item()
        assert (pd.isna(got) and expected is None) or got == expected


def test_effective_depth_counts_layers_above_gate_threshold(analysed):
    _, out, _ = analysed
    runs = pd.read_csv(out / "runs.csv").set_index("run")
    for (model, depth, bias, seed), (_, _, gates) in RUNS.items():
        value = runs.loc[f"{model},depth={depth},carry_bias={bias},seed={seed}",
                         "effective_depth"]
        if gates:
            assert value == sum(g > 0.1 for g in gates)
        else:
            assert pd.isna(value)


def test_every_figure_is_written(analysed):
    _, out, _ = analysed
    for name in FIGURES:
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000, name


def test_report_numbers_match_the_fabricated_runs(analysed):
    _, out, _ = analysed
    report = (out / "report.md").read_text()
    plain = mean_sd([0.80, 0.70])
    highway = mean_sd([0.95, 0.93])
    assert (f"| 2 | {100 * plain[0]:.1f} ± {100 * plain[1]:.1f}% | "
            f"{100 * highway[0]:.1f} ± {100 * highway[1]:.1f}% (carry_bias -1) |") in report
    assert "| 4 | failed (2/2) |" in report
    assert "The shallow net reaches 85.0%." in report
    # Q2: carry_bias -1 reaches 90% at depth 2 in epochs 3 and 2; -3 never with all seeds.
    epochs = mean_sd([3, 2])
    assert f"| -1 | 2, 4 | 2 | {epochs[0]:.1f} ± {epochs[1]:.1f} |" in report
    assert "| -3 | 2, 4 | none | – |" in report
    # Q3: -3 has one cell that never reaches it, -1 one diverged cell.
    assert "| -3 | 2 | 1 | 0 |" in report and "| -1 | 2 | 0 | 1 |" in report
    # Q4: effective depth per depth x carry_bias (carry_bias -3 first).
    low, high = mean_sd([0, 1]), mean_sd([1, 2])
    assert (f"| 2 | {low[0]:.1f} ± {low[1]:.1f} | {high[0]:.1f} ± {high[1]:.1f} |") in report
    # Lesion: final validation accuracy 0.88 minus 0.80 at layer 0.
    assert "largest drop 8.0 points at layer 0 (its T = 0.20)" in report
    for name in FIGURES:
        assert f"figures/{name}.png" in report
    assert "Skipped 4 folders" in report


def test_threshold_option_recomputes_epochs_to_threshold(analysed, tmp_path):
    sweep, _, _ = analysed
    assert main([str(sweep), "--out", str(tmp_path), "--threshold", "0.85",
                 "--gate-threshold", "0.25", "--format", "svg"]) == 0
    runs = pd.read_csv(tmp_path / "runs.csv").set_index("run")
    assert runs.loc["highway_fc,depth=2,carry_bias=-1,seed=0", "epochs_to_threshold"] == 2
    assert runs.loc["highway_fc,depth=2,carry_bias=-3,seed=0", "epochs_to_threshold"] == 3
    assert runs.loc["highway_fc,depth=4,carry_bias=-3,seed=1", "effective_depth"] == 2
    assert (tmp_path / "figures" / "accuracy_heatmap.svg").exists()
    assert "≥ 85%" in (tmp_path / "report.md").read_text()


def test_missing_runs_name_the_command_that_makes_them(tmp_path, capsys):
    sweep = tmp_path / "only_highway"
    write_run(sweep / "a", "highway_fc", 3, -2, 0, [0.5, 0.95], 0.96, [0.4, 0.3, 0.2])
    assert main([str(sweep), "--out", str(tmp_path / "out")]) == 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Not answered" in report
    assert "python -m highway_study experiment=blog_baselines" in report
    assert "lesion_every=1" in report
    capsys.readouterr()


def test_default_folder_is_the_newest_sweep(tmp_path, monkeypatch, capsys):
    for name, stamp in (("old", 1_000_000), ("new", 2_000_000)):
        sweep = tmp_path / "outputs" / "sweeps" / "2026-01-01" / name
        write_run(sweep / "run", "highway_fc", 2, -1, 0, [0.5], 0.5, [0.3, 0.3])
        (sweep / "multirun.yaml").write_text("hydra: {}\n")
        os.utime(sweep / "multirun.yaml", (stamp, stamp))
    monkeypatch.chdir(tmp_path)
    assert main([]) == 0
    assert (tmp_path / "outputs/sweeps/2026-01-01/new/analysis/report.md").exists()
    assert not (tmp_path / "outputs/sweeps/2026-01-01/old/analysis").exists()
    assert capsys.readouterr().out.startswith(
        "No folder given: analysing outputs/sweeps/2026-01-01/new, the newest sweep under "
        "outputs/ (a grid); pass a folder to analyse another.\n")


def test_default_folder_may_be_an_optuna_search(tmp_path, monkeypatch, capsys):
    """An Optuna search's folder has no multirun.yaml (the Optuna sweeper writes none), only
    the progress file; it is still a sweep, and the newest one here. A newer sweep folder
    without any run record (refused before its first run) is passed over."""
    outputs = tmp_path / "outputs"
    grid = outputs / "experiments" / "quickstart"
    write_run(grid / "depth=2", "highway_fc", 2, -1, 0, [0.5], 0.5, [0.3, 0.3])
    (grid / "multirun.yaml").write_text("hydra: {}\n")
    search = outputs / "sweeps" / "2026-01-02" / "10-00-00"
    for trial, depth in enumerate((3, 7)):
        write_run(search / f"carry_bias=-2.5,depth={depth}", "highway_fc", depth, -2.5, 0,
                  [0.6], 0.6, [0.2] * depth)
    (search / "progress.jsonl").write_text('{"event": "start", "total": 2, "time": 0}\n')
    empty = outputs / "sweeps" / "2026-01-03" / "09-00-00"
    empty.mkdir(parents=True)
    (empty / "progress.jsonl").write_text('{"event": "start", "total": 2, "time": 0}\n')
    for path, stamp in ((grid / "multirun.yaml", 1_000_000), (search / "progress.jsonl", 2_000_000),
                        (empty / "progress.jsonl", 3_000_000)):
        os.utime(path, (stamp, stamp))
    monkeypatch.chdir(tmp_path)
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("No folder given: analysing outputs/sweeps/2026-01-02/10-00-00, the "
                          "newest sweep under outputs/ (an Optuna search)")
    assert "Analysed 2 runs" in out
    assert (search / "analysis" / "runs.csv").exists() and not (grid / "analysis").exists()


@pytest.mark.parametrize("argv, words", [
    (["{empty}"], ["No finished highway_study runs", "empty"]),
    (["{tmp}/nowhere"], ["nowhere", "does not exist"]),
    (["{tmp}", "--threshold", "90"], ["--threshold=90", "(0, 1]"]),
    (["{tmp}", "--curve-depths", "7", "--out", "{tmp}/o"], ["--curve-depths 7", "2"]),
])
def test_bad_input_ends_in_one_sentence(tmp_path, capsys, argv, words):
    (tmp_path / "empty").mkdir()
    if "--curve-depths" in argv:
        write_run(tmp_path / "run", "highway_fc", 2, -1, 0, [0.5], 0.5, [0.3, 0.3])
    args = [a.format(empty=tmp_path / "empty", tmp=tmp_path) for a in argv]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    for word in words:
        assert word in err


def test_bad_format_is_refused_by_name(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path), "--format", "gif"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "'gif'" in err and "png" in err and "Traceback" not in err


def test_only_broken_runs_end_in_one_sentence(tmp_path, capsys):
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "summary.json").write_text("{")
    assert main([str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert "No finished highway_study runs" in err and "1 unusable" in err
    assert not (tmp_path / "analysis").exists()


def test_heatmaps_mark_cells_without_a_number(analysed):
    from analysis import plots
    from analysis.collect import collect

    sweep, _, _ = analysed
    runs = collect([sweep]).runs

    def texts(fig):
        return [t.get_text() for ax in fig.axes for t in ax.texts]

    accuracy = texts(plots.accuracy_heatmap(runs))
    assert accuracy.count("div") == 1 and accuracy.count("fail") == 1
    assert "94.0\n±1.4" in accuracy  # highway depth 2, carry_bias -1: mean and sd of 2 seeds
    epochs = texts(plots.epochs_heatmap(runs, 0.9))
    # never: highway depth 4 / carry_bias -3, plain depth 2, shallow
    assert epochs.count("never") == 3 and "3.0\n1/2 reach" in epochs
    plots.plt.close("all")


def two_learning_rates(root: Path) -> Path:
    """Seeds 0 and 1 of one highway cell at learning rate 0.1 and at 0.01."""
    sweep = root / "mixed"
    sweep.mkdir()
    for rate, test in ((0.1, [0.95, 0.93]), (0.01, [0.55, 0.45])):
        for seed in (0, 1):
            run = sweep / f"lr={rate},seed={seed}"
            write_run(run, "highway_fc", 2, -1, seed, [0.5, test[seed]], test[seed], [0.3, 0.2])
            summary = json.loads((run / "summary.json").read_text())
            summary["config"]["optimizer"]["learning_rate"] = rate
            (run / "summary.json").write_text(json.dumps(summary))
    return sweep


def test_cells_that_pool_different_settings_are_named(tmp_path, capsys):
    sweep = two_learning_rates(tmp_path)
    assert main([str(sweep), "--out", str(tmp_path / "all")]) == 0
    warning = ("Cells pool runs that differ in optimizer.learning_rate (0.01, 0.1), so their "
               "means mix those settings: pick one with --where, e.g. --where "
               "optimizer.learning_rate=0.01.")
    assert f"warning: {warning}" in capsys.readouterr().err
    assert f"**Warning:** {warning}" in (tmp_path / "all" / "report.md").read_text()


def test_where_keeps_one_setting_and_the_report_says_so(tmp_path, capsys):
    sweep = two_learning_rates(tmp_path)
    out = tmp_path / "fast"
    assert main([str(sweep), "--out", str(out), "--where", "optimizer.learning_rate=0.1"]) == 0
    assert "Cells pool" not in capsys.readouterr().err
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(runs["test_accuracy"]) == [0.93, 0.95]
    report = (out / "report.md").read_text()
    assert "Only runs with optimizer.learning_rate=0.1 (`--where`)." in report
    assert "Warning" not in report and "Config keys that vary across runs: seed." in report

    from analysis import tables
    from analysis.collect import collect
    from analysis.select import parse_where, select

    chosen = select(collect([sweep]), [parse_where("optimizer.learning_rate=0.1")])
    cell = tables.cells(chosen.runs, "test_accuracy").iloc[0]
    assert (cell["n"], cell["mean"]) == (2, pytest.approx(0.94))
    assert set(chosen.curves["run"]) == set(chosen.runs["run"])


@pytest.mark.parametrize("where, words", [
    ("learning_rate", ["--where 'learning_rate' is not KEY=VALUE"]),
    ("momentum=0.9", ["'momentum' is not a config key", "optimizer.learning_rate"]),
    ("optimizer.learning_rate=0.5", ["No run has optimizer.learning_rate=0.5."]),
])
def test_bad_where_ends_in_one_sentence(tmp_path, capsys, where, words):
    sweep = two_learning_rates(tmp_path)
    assert main([str(sweep), "--out", str(tmp_path / "o"), "--where", where]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    for word in words:
        assert word in err


def test_a_search_of_many_carry_biases_and_rates_is_drawn_and_named_briefly(tmp_path, capsys):
    """An Optuna search's trials: one depth, 15 carry biases and learning rates that are not
    round. The gate figure labels every carry bias; the pooling warning gives a range."""
    sweep = tmp_path / "search"
    rates = [0.001 * 1.5 ** k for k in range(15)]
    for k, rate in enumerate(rates):
        for seed in (0, 1):  # two runs per carry bias, so the cells pool the rates
            bias = -1.0 - 0.61803 * k
            run = sweep / f"trial{k}_{seed}"
            write_run(run, "highway_fc", 3, bias, seed, [0.5, 0.9], 0.9, [0.3, 0.2, 0.1])
            summary = json.loads((run / "summary.json").read_text())
            summary["config"]["optimizer"]["learning_rate"] = rate * (1 + seed)
            (run / "summary.json").write_text(json.dumps(summary))
    out = tmp_path / "out"
    assert main([str(sweep), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert ("Cells pool runs that differ in optimizer.learning_rate (30 values from 0.001 to "
            f"{2 * rates[-1]:.3g})") in err
    assert (out / "figures" / "gate_activity.png").stat().st_size > 1000

    from analysis import plots, tables
    from analysis.collect import collect

    figure = plots.gate_heatmap(tables.highway_gates(collect([sweep])))
    labels = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert labels == [f"{-1.0 - 0.61803 * k:.3g}" for k in reversed(range(15))]
    plots.plt.close("all")


def test_figures_of_many_settings_have_no_legend_of_every_setting(tmp_path, capsys):
    sweep = tmp_path / "search"
    for k in range(15):
        write_run(sweep / f"trial{k}", "highway_fc", 3, -1.0 - 0.61803 * k, 0, [0.5, 0.9], 0.9,
                  [0.3, 0.2, 0.1])
    from analysis import plots
    from analysis.collect import collect

    runs = collect([sweep]).runs
    for figure in (plots.accuracy_vs_depth(runs), plots.effective_depth(runs, 0.1)):
        ax = figure.axes[0]
        assert ax.get_legend() is None and "15 settings, one line each" in ax.get_title()
    few = collect([two_learning_rates(tmp_path)]).runs
    assert plots.accuracy_vs_depth(few).axes[0].get_legend() is not None
    plots.plt.close("all")


def test_the_every_layer_mark_shows_at_a_single_depth(tmp_path):
    """A line through one point draws nothing: with one depth, the legend's "every layer"
    must still point at something on the axes."""
    sweep = tmp_path / "baselines"
    for seed in range(2):
        write_run(sweep / f"s{seed}", "highway_fc", 18, -2.0, seed, [0.5, 0.9], 0.9,
                  [0.3, 0.2, 0.1])
    from analysis import plots
    from analysis.collect import collect

    ax = plots.effective_depth(collect([sweep]).runs, 0.1).axes[0]
    (every,) = [line for line in ax.get_lines() if line.get_label() == "every layer"]
    assert list(every.get_xdata()) == [18.0] and every.get_marker() == "o"
    plots.plt.close("all")


def test_figures_scale_to_their_data_and_label_every_depth():
    """A 0-100 scale painted 93.6% and 97.3% one colour; a log axis left depth 20 unlabelled."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from analysis import plots

    assert plots.data_range([93.6, 97.3, None]) == (93.6, 97.3)
    assert plots.data_range([95.0, 95.0]) == (94.5, 95.5)  # equal values still draw
    fig, ax = plt.subplots()
    ax.plot([1, 20, 1000], [0, 1, 2])
    plots._log_x_if_wide(ax, pd.Series([1, 2, 20, 1000]))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "20", "1000"]
    plt.close(fig)


def test_accuracy_vs_depth_ticks_the_depths_run_by_number(tmp_path):
    """Figure 3 ticked a log depth axis at 10^0, 10^1 only (depth 20 unlabelled) and a linear
    one at depths 1.0, 1.5, 2.0, ...: both are now ticked at the depths run, as numbers."""
    from analysis import plots
    from analysis.collect import collect

    wide = tmp_path / "wide"
    for depth in (1, 2, 20, 100):
        write_run(wide / f"d{depth}", "highway_fc", depth, -2, 0, [0.5, 0.9], 0.9,
                  [0.2] * depth)
    ax = plots.accuracy_vs_depth(collect([wide]).runs).axes[0]
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "20", "100"]
    assert len(ax.xaxis.get_minor_locator()()) == 0  # no unlabelled minor ticks between
    narrow = tmp_path / "narrow"
    for depth in (1, 2, 4):
        write_run(narrow / f"d{depth}", "highway_fc", depth, -2, 0, [0.5, 0.9], 0.9,
                  [0.2] * depth)
    ax = plots.accuracy_vs_depth(collect([narrow]).runs).axes[0]
    assert ax.get_xscale() == "linear"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "4"]
    low, high = ax.get_ylim()  # fitted around 90%, not 0-100
    assert 80 < low < 90 < high < 100
    plots.plt.close("all")
