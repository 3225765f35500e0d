"""The needs-depth analysis (data=tent): fabricated highway, baseline, shallow and MNIST
sweeps with known numbers -> the learns verdict per cell, residual vs highway, the
1000-layer net at -20 against the shallow net, learners' vs non-learners' gates, the figure
of the two grids, and the line that names the command of a missing part."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pandas as pd
import pytest

from analysis.__main__ import main
from analysis.collect import collect
from analysis.study import needs_depth as nd
from conftest import REPO
from test_analysis import write_run

SHUT = 2e-9  # about sigmoid(-20)


def gates(depth, used, value=0.4, rest=0.05):
    """`used` layers at `value` (>= 0.1), the others at `rest`."""
    return [value] * used + [rest] * (depth - used)


# (depth, carry_bias) -> [(test accuracy or "diverged", gate activity) per seed]
HIGHWAY = {
    (2, -2): [(0.90, [0.5, 0.3]), (0.86, [0.5, 0.3])],                    # learns, 2 used
    (2, -20): [(0.52, [SHUT] * 2), (0.50, [SHUT] * 2)],
    (10, -2): [(0.80, gates(10, 4)), (0.74, gates(10, 4))],               # learns (77%)
    (10, -20): [("diverged", []), (0.80, [SHUT] * 10)],                   # a seed diverged
    (1000, -2): [(0.51, gates(1000, 3, 0.3, 0.01)), (0.49, gates(1000, 3, 0.3, 0.01))],
    (1000, -20): [(0.51, [SHUT] * 1000), (0.53, [SHUT] * 1000)],          # the blog's net
}
# (model, depth) -> test accuracy per seed
BASELINES = {("residual_fc", 2): [0.95, 0.93], ("residual_fc", 10): [0.70, 0.72],
             ("plain_fc", 2): [0.60, 0.62], ("plain_fc", 10): [0.50, 0.50]}
SHALLOW = {("shallow", 1): [0.54, 0.56], ("softmax", 0): [0.50, 0.49]}
# MNIST, one seed: (depth, carry_bias) -> test accuracy (learns from 55%)
MNIST = {(2, -2): 0.97, (2, -20): 0.96, (10, -2): 0.95, (10, -20): 0.96, (1000, -2): 0.10,
         (1000, -20): 0.96}
# MNIST residual nets: depth -> test accuracy per seed (depth 10: one seed diverged)
MNIST_RESIDUAL = {2: [0.96, 0.94], 10: [0.30, "diverged"], 20: ["diverged", "diverged"]}


def tent_run(folder, model, depth, bias, seed, test, gate_activity=(), data="tent"):
    """A run record of `data` (test_analysis.write_run writes synthetic ones)."""
    if test == "diverged":
        write_run(folder, model, depth, bias, seed, val=[0.5, None], status="diverged")
    else:
        write_run(folder, model, depth, bias, seed, [0.5, test], test, gate_activity)
    summary = json.loads((folder / "summary.json").read_text())
    summary["config"]["data"]["name"] = data
    (folder / "summary.json").write_text(json.dumps(summary))


def fabricate(root: Path) -> dict[str, Path]:
    folders = {name: root / name for name in ("needs_depth", "needs_depth_baselines",
                                              "needs_depth_shallow", "blog_depth_bias",
                                              "mnist_residual")}
    for (depth, bias), seeds in HIGHWAY.items():
        for seed, (test, gate_activity) in enumerate(seeds):
            tent_run(folders["needs_depth"] / f"carry_bias={bias},depth={depth},seed={seed}",
                     "highway_fc", depth, bias, seed, test, gate_activity)
    for (model, depth), tests in {**BASELINES, **SHALLOW}.items():
        where = "needs_depth_shallow" if (model, depth) in SHALLOW else "needs_depth_baselines"
        for seed, test in enumerate(tests):
            tent_run(folders[where] / f"model={model},depth={depth},seed={seed}", model, depth,
                     -2, seed, test)
    for (depth, bias), test in MNIST.items():
        tent_run(folders["blog_depth_bias"] / f"carry_bias={bias},depth={depth}", "highway_fc",
                 depth, bias, 0, test, [SHUT] * depth, data="mnist")
    for depth, tests in MNIST_RESIDUAL.items():
        for seed, test in enumerate(tests):
            tent_run(folders["mnist_residual"] / f"depth={depth},seed={seed}", "residual_fc",
                     depth, -2, seed, test, data="mnist")
    return folders


def pct(values) -> str:
    """'88.0 ± 2.8%': how the report writes a mean ± sd over seeds."""
    return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f}%"


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    root = tmp_path_factory.mktemp("needs_depth")
    folders = fabricate(root)
    out = root / "out"
    tent = [str(folders[n]) for n in ("needs_depth", "needs_depth_baselines",
                                      "needs_depth_shallow")]
    assert main([*tent, "--compare", str(folders["blog_depth_bias"]), "--out", str(out)]) == 0
    return folders, out, (out / "needs_depth.md").read_text()


@pytest.fixture(scope="module")
def runs(analysed):
    folders, _, _ = analysed
    c = collect([folders[n] for n in ("needs_depth", "needs_depth_baselines",
                                      "needs_depth_shallow")])
    return nd.with_layers_used(nd.task_runs(c.runs), c.gates), c.gates


def test_learns_is_one_rule_halfway_from_chance():
    cell = {"n": 3, "completed": 3, "diverged": 0, "mean": 0.75}
    assert nd.LEARNS == 0.75 and nd.learns(cell) is True
    assert nd.learns({**cell, "mean": 0.7499}) is False
    assert nd.learns({**cell, "diverged": 1, "completed": 2, "mean": 0.99}) is False
    assert nd.learns({**cell, "completed": 0, "mean": float("nan")}) is None
    assert nd.learns({**cell, "mean": 0.56}, chance_level=0.1) is True  # MNIST: from 55%


def test_verdict_per_cell(runs, analysed):
    cells = nd.grid(runs[0]).set_index(["depth", "carry_bias"])
    verdict = {key: cells.loc[key, "learns"] for key in HIGHWAY}
    assert verdict == {(2, -2): True, (2, -20): False, (10, -2): True, (10, -20): False,
                       (1000, -2): False, (1000, -20): False}
    assert cells.loc[(10, -2), "mean"] == pytest.approx(0.77)
    assert cells.loc[(10, -20), "mean"] == pytest.approx(0.80)  # its completed seed only
    assert list(cells["layers_used"]) == [0, 2, 0, 4, 0, 3]  # -20 before -2
    _, out, section = analysed
    assert ("2 of 6 cells learn the task (carry bias -2: depth 2, 10). Best: depth 2, carry "
            f"bias -2, {pct([0.90, 0.86])}.") in section
    assert f"| 2 | {pct([0.52, 0.50])} | **{pct([0.90, 0.86])}** |" in section  # -20, -2
    assert "| 10 | 80.0% (1 of 2 runs diverged) | **77.0 ± 4.2%** |" in section
    table = pd.read_csv(out / "needs_depth_cells.csv")
    assert len(table) == 6 and table["learns"].sum() == 2


def test_residual_against_highway_and_plain(runs, analysed):
    table = nd.compare(runs[0]).set_index("depth")
    assert table.loc[2, "residual_mean"] == pytest.approx(0.94)
    assert table.loc[2, "highway_best_mean"] == pytest.approx(0.88)
    assert table.loc[2, "highway_best_carry_bias"] == -2
    # depth 10: -20's surviving seed (80%) does not make it the best; -2 learns (77%)
    assert table.loc[10, "highway_best_carry_bias"] == -2
    assert table.loc[1000, "highway_best_carry_bias"] == -20  # 52% beats 50% at -2
    assert table.loc[10, "highway_moderate_mean"] == pytest.approx(0.77)
    assert [table.loc[d, "residual_learns"] for d in (2, 10)] == [True, False]
    assert not table["plain_learns"].any()
    assert pd.isna(table.loc[1000, "residual_mean"])  # residual nets were not run that deep
    _, _, section = analysed
    assert (f"| 2 | {pct([0.60, 0.62])} | **{pct([0.95, 0.93])}** | **{pct([0.90, 0.86])}** "
            f"(-2) | **{pct([0.90, 0.86])}** |") in section
    assert ("Residual nets learn it at depth 2; highway nets at their best carry bias learn "
            "it at depth 2, 10; highway nets at carry bias -2 learn it at depth 2, 10; plain "
            "nets learn it at no depth.") in section
    assert "+6.0 at depth 2, -6.0 at depth 10" in section


def test_the_deep_net_at_minus_20_against_the_shallow_net(runs, analysed):
    answer = nd.deep_vs_shallow(runs[0])
    assert answer["most_layers_used"] == 0 and answer["uses_no_layer"]
    assert answer["deep"]["learns"] is False and answer["shallow"]["learns"] is False
    assert answer["prediction"] is True
    _, _, section = analysed
    assert (f"Depth 1000, carry bias -20: {pct([0.51, 0.53])} test accuracy (does not "
            "learn); layers used: 0.0 ± 0.0 of 1000 (at most 0 in any seed).") in section
    assert (f"The shallow net (one hidden layer): {pct([0.54, 0.56])} (does not learn). "
            f"Softmax regression: {pct([0.50, 0.49])} (does not learn).") in section
    assert "**As on MNIST: it uses none of its layers" in section


def test_a_deep_net_that_uses_its_layers_is_no_shallow_net(tmp_path):
    for seed, test in enumerate((0.90, 0.92)):
        tent_run(tmp_path / f"deep{seed}", "highway_fc", 1000, -20, seed, test,
                 gates(1000, 12))
        tent_run(tmp_path / f"shallow{seed}", "shallow", 1, -2, seed, 0.55)
    c = collect([tmp_path])
    answer = nd.deep_vs_shallow(nd.with_layers_used(c.runs, c.gates))
    assert answer["most_layers_used"] == 12 and answer["prediction"] is False
    assert main([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    section = (tmp_path / "out" / "needs_depth.md").read_text()
    assert ("**Not as on MNIST: it uses its layers and learns the task, which the shallow net "
            "does not: the depth is used.**") in section
    assert "12.0 ± 0.0 of 1000" in section


@pytest.mark.parametrize("deep, used, shallow, words", [
    (True, 0, False, "none of its layers is used (no gate opened), yet it learns where the"),
    (False, 0, True, "none of its layers is used (no gate opened), yet it fails where the"),
    (False, 7, True, "7 of its layers open their gates, yet it fails where the shallow net"),
    (False, 7, False, "Partly as on MNIST: it fails like the shallow net, but up to 7"),
    (None, float("nan"), False, "Not measured yet"),
])
def test_every_other_outcome_says_which_half_of_the_prediction_fails(deep, used, shallow,
                                                                      words):
    from analysis.study.needs_depth_report import _deep_verdict

    answer = {"deep": {"learns": deep}, "shallow": {"learns": shallow},
              "most_layers_used": used, "uses_no_layer": used == 0,
              "prediction": used == 0 and deep == shallow}
    assert words in _deep_verdict(answer)


def test_gates_of_learners_and_non_learners(runs, analysed):
    groups = nd.gate_groups(*runs).set_index("group")
    learners, others = groups.loc["learns"], groups.loc["does not learn"]
    assert (learners["cells"], learners["runs"], learners["depths"]) == (2, 4, "2,10")
    assert learners["layers_used"] == pytest.approx(3.0)  # 2, 2, 4, 4
    assert learners["layers_used_share"] == pytest.approx((1 + 1 + 0.4 + 0.4) / 4)
    assert learners["share_of_layers_used"] == pytest.approx(12 / 24)
    assert learners["mean_gate"] == pytest.approx((2 * 0.8 + 2 * (4 * 0.4 + 6 * 0.05)) / 24)
    # completed runs of cells that do not learn: 2 + 1 + 2 + 2 (the diverged seed has none)
    assert (others["cells"], others["runs"]) == (4, 7)
    assert others["layers_used"] == pytest.approx(6 / 7)
    _, out, section = analysed
    assert "| learns | 2 (4) | 2,10 | 82.5% | 3.0 ± 1.2 | 70.0% | 0.23 | 50.0% |" in section
    assert "| 1000 | 0 of 2 | – | – | 1.5 |" in section
    assert (out / "needs_depth_gates.csv").exists()
    assert (out / "figures" / "needs_depth_gates.png").stat().st_size > 1000


def test_the_two_grids_stand_side_by_side(analysed):
    from analysis.study import needs_depth_plots
    from analysis.plots import plt

    folders, out, section = analysed
    assert (out / "figures" / "needs_depth_heatmaps.png").stat().st_size > 1000
    assert "![Tent grid beside the MNIST grid](figures/needs_depth_heatmaps.png)" in section
    tent, mnist = collect([folders["needs_depth"]]).runs, collect([folders["blog_depth_bias"]]).runs
    fig = needs_depth_plots.heatmaps([("tent", tent), ("mnist", mnist)])
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["tent", "mnist"]
    bars = [ax for ax in fig.axes if not ax.get_title()]
    labels = [[t.get_text() for t in bar.get_yticklabels()] for bar in bars]
    assert labels == [["chance 50", "learns 75", "100"], ["chance 10", "learns 55", "100"]]
    plt.close(fig)
    # 2 cells learn both, 3 learn MNIST only (its 55% mark), none tent only, 1 neither.
    assert ("Of the 6 depth x carry-bias cells both grids ran, 2 learn both tasks, 3 learn "
            "mnist only") in section and "0 learn tent only and 1 neither" in section
    assert "Cells that learn mnist but not tent: carry bias -20: depth 2, 10, 1000." in section
    assert "but not mnist" not in section


def test_residual_nets_on_mnist_answer_question_2_there(analysed, tmp_path):
    """--compare takes the MNIST grid and the MNIST residual nets together; without the
    residual nets the part names the command that makes them."""
    folders, _, section = analysed
    assert "Not answered yet: `--compare` holds no residual nets" in section
    assert nd.COMMANDS["mnist_residual"] in section
    tent = [str(folders[n]) for n in ("needs_depth", "needs_depth_baselines")]
    assert main([*tent, "--compare", str(folders["blog_depth_bias"]),
                 str(folders["mnist_residual"]), "--out", str(tmp_path)]) == 0
    section = (tmp_path / "needs_depth.md").read_text()
    part = section[section.index("#### Residual and plain nets against highway nets on mnist"):]
    assert "Residual nets learn mnist at depth 2; highway nets at their best carry bias " \
           "learn mnist at depth 2, 10, 1000" in part
    assert f"| 2 | – | **{pct([0.96, 0.94])}** | **97.0%** (-2) | **97.0%** |" in part
    assert "| 10 | – | 30.0% (1 of 2 runs diverged) | **96.0%** (-20) | **95.0%** |" in part
    table = pd.read_csv(tmp_path / "needs_depth_families_compared.csv").set_index("depth")
    assert table.loc[2, "residual_mean"] == pytest.approx(0.95)
    assert table.loc[1000, "highway_best_carry_bias"] == -20
    # the tent grid's own cells are untouched by the MNIST residual nets
    assert pd.read_csv(tmp_path / "needs_depth_families.csv").set_index("depth").loc[
        2, "residual_mean"] == pytest.approx(0.94)


def test_report_sets_residual_nets_beside_highway_nets_on_any_data(analysed, tmp_path):
    """report.md's shortcut section: written for the MNIST residual nets, not for tent runs
    (needs_depth.md answers that), and absent without residual nets."""
    folders, out, _ = analysed
    assert main([str(folders["blog_depth_bias"]), str(folders["mnist_residual"]),
                 "--out", str(tmp_path)]) == 0
    report = (tmp_path / "report.md").read_text()
    part = report[report.index("## Carry gate or identity shortcut"):]
    assert part.index("### data=mnist") < part.index("Residual nets learn data=mnist at depth 2;")
    assert "| 20 | – | 2 of 2 runs diverged | – | – |" in part
    table = pd.read_csv(tmp_path / "shortcuts.csv").set_index("depth")
    assert table.loc[10, "residual_diverged"] == 1 and table.loc[2, "group"] == "data=mnist"
    assert "Carry gate or identity shortcut" not in (out / "report.md").read_text()  # tent
    assert main([str(folders["blog_depth_bias"]), "--out", str(tmp_path / "grid")]) == 0
    assert "Carry gate or identity shortcut" not in (tmp_path / "grid" / "report.md").read_text()
    assert not (tmp_path / "grid" / "shortcuts.csv").exists()


def test_the_committed_mnist_grid_can_be_compared_as_runs_csv(analysed, tmp_path):
    folders, _, _ = analysed
    grid = REPO / "docs" / "study" / "grid" / "runs.csv"
    assert main([str(folders["needs_depth"]), "--compare", str(grid),
                 "--out", str(tmp_path)]) == 0
    section = (tmp_path / "needs_depth.md").read_text()
    assert "depth x carry-bias cells both grids ran" in section and "mnist" in section
    assert (tmp_path / "figures" / "needs_depth_heatmaps.png").exists()


def test_missing_parts_name_their_commands(analysed, tmp_path):
    folders, _, _ = analysed
    assert main([str(folders["needs_depth"]), "--out", str(tmp_path / "highway")]) == 0
    section = (tmp_path / "highway" / "needs_depth.md").read_text()
    for command in ("python -m highway_study experiment=needs_depth_baselines",
                    "python -m highway_study experiment=needs_depth_shallow",
                    "HIGHWAY_STUDY_DATA=/path/to/data python -m highway_study "
                    "experiment=blog_depth_bias"):
        assert f"Produce the runs with:\n\n    {command}" in section
    assert section.count("Not answered yet") == 3
    assert "### 5. The tent grid" in (tmp_path / "highway" / "report.md").read_text()

    assert main([str(folders["needs_depth_shallow"]), "--out", str(tmp_path / "shallow")]) == 0
    section = (tmp_path / "shallow" / "needs_depth.md").read_text()
    assert section.count("experiment=needs_depth hydra/launcher=population") == 4
    assert ("Produce the runs with:\n\n    python -m highway_study experiment=needs_depth "
            "depth=1000 carry_bias=-20 hydra/launcher=population") in section  # one cell


@pytest.mark.parametrize("folder, compare, words", [
    ("blog_depth_bias", "blog_depth_bias", ["no data=tent run"]),
    ("needs_depth", "nowhere.csv", ["nowhere.csv", "is not a readable runs.csv"]),
    ("needs_depth", "nowhere", ["nowhere", "does not exist"]),
    ("needs_depth", "needs_depth/carry_bias=-2,depth=2,seed=0/summary.json", ["summary.json"]),
])
def test_a_bad_compare_ends_in_one_sentence(analysed, tmp_path, capsys, folder, compare,
                                           words):
    folders, _, _ = analysed
    root = folders["needs_depth"].parent
    assert main([str(root / folder), "--compare", str(root / compare),
                 "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    for word in words:
        assert word in err


def test_gate_profiles_draw_the_median_run_per_layer():
    """On the log scale the line is the median run (a mean would be the open gate's alone)
    and its band the middle half of the runs, which stays above zero."""
    from analysis.study import needs_depth_plots

    rows = [{"depth": 3, "group": group, "run": f"{group}{r}", "layer": layer,
             "gate_activity": value}
            for group, values in (("learns", [0.2, 0.3, 0.4]),
                                  ("does not learn", [SHUT, 1e-6, 0.5]))
            for r, value in enumerate(values) for layer in range(3)]
    figure = needs_depth_plots.gate_profiles(pd.DataFrame(rows))
    lines = {tuple(line.get_ydata()) for line in figure.axes[0].lines
             if len(line.get_ydata()) == 3}
    assert (0.3, 0.3, 0.3) in lines and (1e-6, 1e-6, 1e-6) in lines
    band = figure.axes[0].collections[1].get_paths()[0].vertices[:, 1]  # does not learn
    assert band.min() > 0 and band.min() == pytest.approx((SHUT + 1e-6) / 2, rel=0.01)
    needs_depth_plots.plt.close("all")


def test_compare_with_residual_nets_alone_still_answers(analysed, tmp_path):
    """--compare given only the MNIST residual nets: no grid to draw beside the tent grid
    (named as missing), the residual table still written."""
    folders, _, _ = analysed
    assert main([str(folders["needs_depth"]), "--compare", str(folders["mnist_residual"]),
                 "--out", str(tmp_path)]) == 0
    section = (tmp_path / "needs_depth.md").read_text()
    assert "holds no fully connected highway runs" in section
    table = pd.read_csv(tmp_path / "needs_depth_families_compared.csv").set_index("depth")
    assert table.loc[2, "residual_mean"] == pytest.approx(0.95)


def test_the_gate_figure_compares_runs_within_the_same_cells(analysed):
    """Only cells with seeds on both sides of the mark enter, each run grouped by its own
    result: the carry bias is the same on both sides."""
    folders, _, _ = analysed
    collection = collect([folders["needs_depth"]])
    profile = nd.gate_profile(collection.runs, collection.gates)
    runs = collection.runs.set_index("run")
    cells = set(zip(runs.loc[profile["run"], "depth"], runs.loc[profile["run"], "carry_bias"]))
    assert cells == {(10, -2.0)}  # 80% and 74%: the one cell whose seeds disagree
    assert set(profile.groupby("run")["group"].first()) == {"learns", "does not learn"}


def test_grid_cells_no_run_filled_say_not_run_and_the_compared_panel_names_its_sources():
    from analysis import plots
    from analysis.study import needs_depth_report

    cells = pd.DataFrame({"depth": [2, 2, 10], "carry_bias": [-1.0, -2.0, -1.0],
                          "mean": [0.9, 0.8, 0.7], "sd": [0.0] * 3, "n": [1] * 3,
                          "completed": [1] * 3, "diverged": [0] * 3})
    fig, ax = plots.plt.subplots()
    plots.grid_panel(ax, cells, lambda c: c["mean"], lambda c: "x", lambda c: None,
                     dict(vmin=0, vmax=1))
    assert [t.get_text() for t in ax.texts].count("not run") == 1  # depth 10 at -2
    plots.plt.close(fig)
    study = needs_depth_report.Study(pd.DataFrame(), pd.DataFrame(),
                                     other=pd.DataFrame({"data": ["mnist"]}),
                                     other_name="out/blog_depth_bias out/mnist_residual")
    assert needs_depth_report._other_title(study) == (
        "mnist: highway runs of blog_depth_bias, mnist_residual")
