"""analysis at step resolution: fabricated curve.jsonl files with known numbers ->
runs.csv columns, the step heatmaps, learning curves over steps, gate dynamics, report."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from analysis.__main__ import main
from test_analysis import write_run

# (depth, carry_bias, seed) -> validation accuracy at steps 0, 100, ..., 1200
CURVES = {
    (2, -1, 0): [0.1, 0.4, 0.7, 0.92, 0.95, 0.96, 0.96, 0.97, 0.97, 0.97, 0.97, 0.97, 0.97],
    (2, -1, 1): [0.1, 0.5, 0.8, 0.91, 0.93, 0.96, 0.96, 0.96, 0.97, 0.97, 0.97, 0.97, 0.97],
    (2, -3, 0): [0.1, 0.2, 0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.91, 0.92, 0.92, 0.93],
    (8, -1, 0): [0.1, 0.1, 0.11, 0.12, 0.1, 0.11, 0.12, 0.1, 0.11, 0.1, 0.12, 0.11, 0.12],
    (8, -3, 0): [0.1, 0.3, 0.6, 0.85, 0.9, 0.93, 0.94, 0.95, 0.95, 0.95, 0.95, 0.95, 0.96],
}
EVERY = 100


def gates(depth, bias, step):
    """Gate activity that starts near sigmoid(bias) and opens with the steps (layer 0 most)."""
    start = 0.27 if bias == -1 else 0.05
    return [start + 0.0001 * step / (layer + 1) for layer in range(depth)]


def fabricate(root: Path) -> Path:
    sweep = root / "sweep"
    for (depth, bias, seed), accuracies in CURVES.items():
        run = sweep / f"depth={depth},carry_bias={bias},seed={seed}"
        write_run(run, "highway_fc", depth, bias, seed, [accuracies[5], accuracies[-1]],
                  accuracies[-1], gates(depth, bias, 1200))
        summary = json.loads((run / "summary.json").read_text())
        summary["config"]["eval_every"] = EVERY
        (run / "summary.json").write_text(json.dumps(summary))
        with open(run / "curve.jsonl", "w") as stream:
            for index, accuracy in enumerate(accuracies):
                step = index * EVERY
                stream.write(json.dumps({"step": step, "val_accuracy": accuracy,
                                         "gate_activity": gates(depth, bias, step)}) + "\n")
    return sweep


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    root = tmp_path_factory.mktemp("curves")
    sweep = fabricate(root)
    out = root / "out"
    assert main([str(sweep), "--out", str(out)]) == 0
    return sweep, out


def first(accuracies, threshold):
    return next((EVERY * i for i, a in enumerate(accuracies) if a >= threshold), None)


def test_runs_table_holds_the_step_resolution_columns(analysed):
    _, out = analysed
    runs = pd.read_csv(out / "runs.csv").set_index("run")
    for (depth, bias, seed), accuracies in CURVES.items():
        row = runs.loc[f"depth={depth},carry_bias={bias},seed={seed}"]
        expected = first(accuracies, 0.9)
        got = row["curve_steps_to_threshold"]
        assert (pd.isna(got) and expected is None) or got == expected
        assert row["curve_last_step"] == 1200
        assert row["accuracy_after_250"] == accuracies[2]  # the point at step 200
        assert row["accuracy_after_1000"] == accuracies[10]
    assert bool(runs.loc["depth=8,carry_bias=-1,seed=0", "stalled"]) is True
    assert bool(runs.loc["depth=2,carry_bias=-3,seed=0", "stalled"]) is False
    # gates of an 8-layer net moved 0.12/(layer+1) on average over layers
    shift = sum(0.12 / (layer + 1) for layer in range(8)) / 8
    assert runs.loc["depth=8,carry_bias=-3,seed=0", "gate_shift"] == pytest.approx(shift)


def test_the_step_figures_are_written(analysed):
    _, out = analysed
    for name in ("steps_heatmap", "budget_heatmaps", "step_curves", "gate_dynamics",
                 "gate_shift_heatmap"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000, name


def test_steps_heatmap_shows_steps_and_marks_never(analysed):
    from analysis import step_plots
    from analysis.collect import collect

    sweep, _ = analysed
    runs = collect([sweep]).runs
    texts = [t.get_text() for ax in step_plots.steps_heatmap(runs, 0.9).axes for t in ax.texts]
    assert "300\n±0" in texts  # depth 2, carry_bias -1: both seeds at step 300
    assert "800" in texts and "400" in texts and texts.count("never") == 1
    step_plots.plt.close("all")


def test_report_answers_convergence_questions_in_steps(analysed):
    _, out = analysed
    report = (out / "report.md").read_text()
    assert "a point every 100 steps" in report
    assert "\"After N steps\" is each run's last point at or before step N" in report
    # Q2: carry_bias -3 reaches 90% at depth 8 (the deepest) after 400 steps
    assert "| -3 | 2, 8 | 8 (deepest tried) | 400 |" in report
    # Q3: -1 has one cell that never reaches it; one of its 3 runs stalled
    assert "| -1 | 2 | 1 | 0 | 300 | " in report and "| 1/3 |" in report
    assert "| highway_fc | 8 | -1 | never |" in report
    assert "figures/steps_heatmap.png" in report and "figures/gate_dynamics.png" in report
    assert "Gate dynamics of" not in report  # the title is in the figure, the run in the text
    assert "`depth=8,carry_bias=-3,seed=0`" in report  # deepest, best test accuracy


def test_budgets_and_gate_run_options(analysed, tmp_path, capsys):
    sweep, _ = analysed
    out = tmp_path / "o"
    assert main([str(sweep), "--out", str(out), "--budgets", "100,600",
                 "--gate-run", "depth=2,carry_bias=-1,seed=1"]) == 0
    runs = pd.read_csv(out / "runs.csv")
    assert {"accuracy_after_100", "accuracy_after_600"} <= set(runs.columns)
    assert "`depth=2,carry_bias=-1,seed=1`" in (out / "report.md").read_text()
    assert main([str(sweep), "--out", str(out), "--gate-run", "nope"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--gate-run 'nope'" in err


def test_tent_runs_stall_at_their_own_chance(tmp_path):
    """A tent record carries the schema's data.num_classes (10), but tent has two classes:
    a run at 52% from step 1000 on is stalled (chance 50%), not 42 points above chance."""
    from analysis.collect import collect

    run = tmp_path / "run"
    write_run(run, "highway_fc", 2, -2, 0, [0.5, 0.52], 0.52, [0.1, 0.1])
    summary = json.loads((run / "summary.json").read_text())
    summary["config"]["data"].update(name="tent", num_classes=10)
    (run / "summary.json").write_text(json.dumps(summary))
    with open(run / "curve.jsonl", "w") as stream:
        for step in range(0, 1300, 100):
            stream.write(json.dumps({"step": step, "val_accuracy": 0.52}) + "\n")
    assert bool(collect([tmp_path]).runs["stalled"].item()) is True


def test_budget_heatmaps_keep_each_models_depths(analysed):
    """A model with other depths (a shallow baseline at depth 0) must not squeeze the
    highway rows of the figure to its own single row."""
    from analysis import step_plots, tables
    from analysis.collect import collect

    sweep, _ = analysed
    collection = collect([sweep])
    runs = tables.with_budgets(collection.runs, collection.points, [250, 1000])
    baseline = runs[runs["depth"] == 2].assign(model="shallow", depth=0, carry_bias=-2.0)
    figure = step_plots.budget_heatmaps(pd.concat([runs, baseline]), [250, 1000])
    heatmaps = [ax for ax in figure.axes if ax.get_title()]
    rows = {ax.get_title().split(":")[0]: sorted(t.get_text() for t in ax.get_yticklabels())
            for ax in heatmaps if "(budget 250)" in ax.get_title()}  # the labelled column
    assert rows == {"highway_fc": ["2", "8"], "shallow": ["0"]}
    for ax in heatmaps:  # every row of a panel is in view
        assert abs(ax.get_ylim()[0] - ax.get_ylim()[1]) == len(rows[ax.get_title().split(":")[0]])
    step_plots.plt.close("all")


def test_budget_heatmaps_name_the_step_they_read(analysed):
    """Points every 100 steps: "after 250 steps" showed the point at step 200 under a title
    that said 250."""
    from analysis import step_plots, tables
    from analysis.collect import collect

    sweep, out = analysed
    collection = collect([sweep])
    runs = tables.with_budgets(collection.runs, collection.points, [250, 1000])
    assert set(runs["step_read_after_250"]) == {200} and set(runs["step_read_after_1000"]) == {1000}
    assert (pd.read_csv(out / "runs.csv")["step_read_after_1000"] == 1000).all()
    figure = step_plots.budget_heatmaps(runs, [250, 1000])
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titles == ["highway_fc: after 200 steps\n(budget 250)", "highway_fc: after 1,000 steps"]
    # every panel on one colour scale, spanning the accuracies read, not 0-100
    read = 100 * pd.concat([runs["accuracy_after_250"], runs["accuracy_after_1000"]])
    limits = {ax.collections[0].get_clim() for ax in figure.axes if ax.get_title()}
    assert len(limits) == 1
    (low, high), = limits
    assert low == pytest.approx(read.min()) and high == pytest.approx(read.max())
    step_plots.plt.close("all")


def short_runs(root: Path, steps: dict) -> Path:
    """Runs of `steps[bias]` steps with points every 100 steps and at their end."""
    sweep = root / "short"
    for bias, last in steps.items():
        run = sweep / f"carry_bias={bias}"
        write_run(run, "highway_fc", 2, bias, 0, [0.5, 0.6], 0.6, [0.1, 0.1])
        with open(run / "curve.jsonl", "w") as stream:
            for step in sorted({*range(0, last, 100), last}):
                stream.write(json.dumps({"step": step, "val_accuracy": 0.1 + step / 1000}) + "\n")
    return sweep


def test_budgets_before_the_first_point_do_not_show_step_0(tmp_path):
    """20-step runs (points at 0 and 20): the default budgets 5, 10 and 20 drew "after 5
    steps" and "after 10 steps" from the point at step 0, the untrained net."""
    from analysis import step_plots, tables
    from analysis.collect import collect

    collection = collect([short_runs(tmp_path, {-1: 20, -3: 20})])
    budgets = tables.default_budgets(collection.runs)
    assert budgets == [5, 10, 20]
    runs = tables.with_budgets(collection.runs, collection.points, budgets)
    assert set(runs["step_read_after_5"]) == {0}  # runs.csv keeps what was read, and where
    figure = step_plots.budget_heatmaps(runs, budgets)
    assert [ax.get_title() for ax in figure.axes if ax.get_title()] == [
        "highway_fc: after 20 steps"]
    assert "budgets 5, 10 left out: no run has a point after step 0" in figure.get_suptitle()
    # One 20-step run beside a 300-step one: budget 100 reads step 0 of the short run only,
    # a cell marked "step 0", not a number.
    collection = collect([short_runs(tmp_path / "mixed", {-1: 20, -3: 300})])
    runs = tables.with_budgets(collection.runs, collection.points, [20, 100])
    runs.loc[runs["carry_bias"] == -1, "step_read_after_100"] = 0  # as a run that had
    runs.loc[runs["carry_bias"] == -1, "accuracy_after_100"] = 0.1  # gone on at step 0
    figure = step_plots.budget_heatmaps(runs, [20, 100])
    panel = next(ax for ax in figure.axes if "after 100 steps" in ax.get_title())
    assert [t.get_text() for t in panel.texts] == ["20.0", "step 0"]
    step_plots.plt.close("all")


@pytest.mark.parametrize("biases, depths, printed, rows", [
    (2, 2, r"\d{1,3}\.\d", 1),  # a small grid: one decimal
    (7, 10, r"\d{1,3}", 1),  # the blog's grid: whole percent, one row of three budgets
    (15, 4, r"\d{1,3}", 2),  # a finer search: its budgets wrap onto two rows
    (65, 4, None, 1),  # an Optuna search's carry biases: colour only
])
def test_budget_heatmaps_print_readable_numbers_at_page_width(biases, depths, printed, rows):
    """The blog's grid was drawn 25 inches wide with 6-8 point numbers: at page width, 2 px
    tall. The figure now fits PAGE_WIDTH and prints at MIN_FONT or not at all."""
    import re

    import numpy as np

    from analysis import step_plots

    rng = np.random.default_rng(0)
    budgets = [250, 1000, 5000]
    runs = pd.DataFrame([
        {"run": f"{d},{b}", "model": "highway_fc", "depth": d, "carry_bias": float(b),
         "status": "completed",
         **{f"accuracy_after_{n}": rng.uniform(0.1, 1.0) for n in budgets},
         **{f"step_read_after_{n}": n for n in budgets}}
        for d in [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000][:depths]
        for b in np.linspace(-20, -1, biases).round(3)])
    figure = step_plots.budget_heatmaps(runs, budgets)
    assert figure.get_size_inches()[0] <= step_plots.PAGE_WIDTH
    panels = [ax for ax in figure.axes if ax.get_title()]
    texts = [t for ax in panels for t in ax.texts]
    if printed is None:
        assert texts == [] and "too many cells to print in" in figure.get_suptitle()
    else:
        assert len(texts) == biases * depths * len(budgets)
        assert all(re.fullmatch(printed, t.get_text()) for t in texts)
        assert min(t.get_fontsize() for t in texts) >= step_plots.MIN_FONT
    assert len({round(ax.get_position().y0, 3) for ax in panels}) == rows
    for ax in panels:  # a tick per carry bias; a crowded axis labels every k-th one
        assert len(ax.get_xticks()) == biases
        shown = [t.get_position()[0] for t in ax.get_xticklabels()]  # the visible ones
        assert len(set(np.diff(shown).round(6))) <= 1 and len(shown) >= min(biases, 10)
    step_plots.plt.close("all")


def test_gate_dynamics_names_steps_as_whole_numbers():
    """The step axis read "0.0 120.0 240.0": steps are counted, not measured."""
    from analysis import step_plots

    points = pd.DataFrame({"run": "r", "layer": [0, 0, 1, 1], "step": [0.0, 120.0, 0.0, 120.0],
                           "gate_activity": [0.1, 0.2, 0.1, 0.3]})
    ax = step_plots.gate_dynamics(points, "r", "one run").axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "120"]
    step_plots.plt.close("all")
