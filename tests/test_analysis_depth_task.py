"""The depth task's analysis (tent, centred): fabricated runs with known numbers -> the mark
from the proven bound, success counts with Wilson intervals, each family's setting picked on
validation, the 1000-layer question, lesions, and the section that `python -m analysis`
writes."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from analysis.__main__ import main
from analysis.study import depth_task as dt
from test_analysis import write_run

BOUND = 0.8125  # separation.shallow_bound(8, 4)
MARK = BOUND + 3 * math.sqrt(BOUND * (1 - BOUND) / 4000)


def task_run(folder, model, depth, bias, seed, test, val, lr, gates=(), lesion=None,
             **config):
    """A depth-task record: tent k=4, centred, width 8 unless `config` says otherwise."""
    write_run(folder, model, depth, bias, seed, [0.5, val], test, gates, lesion=lesion)
    summary = json.loads((folder / "summary.json").read_text())
    cfg = summary["config"]
    cfg["data"].update(name="tent", k=4, centred=True, test_size=4000)
    cfg["optimizer"]["learning_rate"] = lr
    cfg["width"] = 8
    cfg["model"]["kinks"] = "spread"
    for key, value in config.items():
        section, _, name = key.rpartition(".")
        (cfg[section] if section else cfg)[name] = value
    (folder / "summary.json").write_text(json.dumps(summary))


def fabricate(root):
    n = 0

    def run(*args, **kwargs):
        nonlocal n
        n += 1
        task_run(root / f"r{n}", *args, **kwargs)

    lesion = [{"layer": 0, "val_accuracy": 0.60}, {"layer": 1, "val_accuracy": 0.93},
              {"layer": 2, "val_accuracy": 0.80}]
    for seed in range(10):  # highway depth 5: -2 at 0.003 beats in 7 of 10 seeds
        win = seed < 7
        run("highway_fc", 5, -2, seed, 0.96 if win else 0.55, 0.95 if win else 0.56, 0.003,
            gates=[0.3] * 5, lesion=lesion if win else None)
        run("highway_fc", 5, -2, seed, 0.97, 0.70, 0.01)   # better test, worse validation
        run("highway_fc", 5, -20, seed, 0.55, 0.55, 0.003, gates=[1e-9] * 5)
        run("highway_fc", 1000, -20, seed, 0.56, 0.56, 0.003, gates=[1e-9] * 1000)
        run("residual_fc", 5, -2, seed, 0.60, 0.61, 0.003, **{"model.branch_scale": 0.2})
        run("residual_fc", 5, -2, seed, 0.50, 0.50, 0.01, **{"model.branch_scale": 0.2})
        run("residual_fc", 10, -2, seed, 0.50, 0.50, 0.01, **{"model.branch_scale": 0.2})
        run("shallow", 1, -2, seed, 0.60, 0.60, 0.01, **{"model.kinks": "spread"})
        run("shallow", 1, -2, seed, 0.97, 0.97, 0.01, width=64, **{"model.kinks": "spread"})
        run("shallow", 1, -2, seed, 0.58, 0.58, 0.01, **{"model.kinks": "bias_init"})
        run("shallow", 1, -2, seed, 0.555, 0.555, 0.003, **{"model.kinks": "spread"})
    run("highway_fc", 5, -2, 0, 0.95, 0.95, 0.003, **{"data.centred": False})  # old task


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    root = tmp_path_factory.mktemp("depth_task")
    fabricate(root / "runs")
    assert main([str(root / "runs"), "--out", str(root / "out")]) == 0
    return root / "out"


def test_centred_tent_runs_are_found_when_every_run_analysed_is_centred(tmp_path):
    """runs.csv has no data.centred column then: the records say."""
    task_run(tmp_path / "runs" / "a", "highway_fc", 5, -2, 0, 0.96, 0.95, 0.003)
    assert main([str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 0
    assert "data.centred" not in pd.read_csv(tmp_path / "out" / "runs.csv")
    assert (tmp_path / "out" / "depth_task.md").exists()
    assert not (tmp_path / "out" / "needs_depth.md").exists()


def test_the_wilson_interval_of_none_and_all_of_ten():
    assert dt.wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert dt.wilson(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    low, high = dt.wilson(7, 10)
    assert low < 0.7 < high


def test_cells_count_the_seeds_above_the_bound_and_skip_the_old_task(analysed):
    cells = pd.read_csv(analysed / "depth_task_cells.csv")
    cell = cells[(cells["family"] == "highway") & (cells["depth"] == 5)
                 & (cells["carry_bias"] == -2) & (cells[dt.LR] == 0.003)].iloc[0]
    assert (cell["runs"], cell["beat"]) == (10, 7)  # the uncentred run is not counted
    assert (cell["low"], cell["high"]) == pytest.approx(dt.wilson(7, 10))
    assert cells["beat"].sum() == 7 + 10 + 10  # lr 0.01 at 0.97, shallow width 64
    runs = pd.read_csv(analysed / "runs.csv")
    assert (runs["test_accuracy"] > MARK).sum() == 28  # the old run too, outside the cells


def test_each_family_is_picked_on_validation_and_reported_on_test(analysed):
    best = pd.read_csv(analysed / "depth_task_best.csv")
    highway = best[(best["family"] == "highway") & (best["depth"] == 5)].iloc[0]
    assert (highway["carry_bias"], highway[dt.LR], highway["beat"]) == (-2, 0.003, 7)
    assert highway["settings"] == 3  # -2 at 0.003 and 0.01, -20 at 0.003
    shallow = best[best["family"] == "shallow"].set_index("width")
    assert shallow.loc[8, "settings"] == 3 and shallow.loc[64, "settings"] == 1
    assert shallow.loc[8, "beat"] == 0 and shallow.loc[64, "beat"] == 10
    assert shallow.loc[8, "model.kinks"] == "spread"  # 60% on validation against 58%


def test_the_section_answers_the_deep_question_and_the_lesions(analysed):
    text = (analysed / "depth_task.md").read_text()
    assert f"pass {100 * BOUND:.2f}%" in text and f"passes {100 * MARK:.1f}%" in text
    assert "| highway, depth 1000 | carry_bias -20, rate 0.003 | 0 of 10 | 56.0 ± 0.0% |" in text
    assert "| one hidden layer | width 8, kinks spread, rate 0.01 | 0 of 10 |" in text
    # Gates shut at -20: each depth beside the shallow net of the same input layer, per rate.
    assert "| rate | one hidden layer | depth 5 | depth 1000 |" in text
    assert "| 0.003 | 55.5% | 55.0% | 56.0% |" in text
    assert "| 0.01 | 60.0% | not run | not run |" in text
    lesions = pd.read_csv(analysed / "depth_task_lesions.csv").iloc[0]
    # Against final validation 0.95: layer 0 costs 35 points, layer 2 15, layer 1 2.
    assert (lesions["depth"], lesions["runs"], lesions["layers_needed_max"]) == (5, 7, 2)
    assert lesions["needed_position_mean"] == pytest.approx((1 / 5 + 3 / 5) / 2)  # layers 1, 3
    assert lesions["deepest_needed_mean"] == 3
    assert (analysed / "figures" / "depth_task_success.png").stat().st_size > 10_000
    # residual depth 10 has 1 of the 2 settings depth 5 has: still running, left out, named
    from analysis.study import depth_task_report
    from analysis.collect import collect

    study = depth_task_report.prepare(collect([analysed.parent / "runs"]))
    deep_ax = depth_task_report.draw(study).axes[0]
    assert deep_ax.get_title().endswith("(residual at depth 10: still running, left out)")
    residual = [bars for bars in deep_ax.containers if bars.get_label() == "residual"]
    assert [list(bars.lines[0].get_xdata()) for bars in residual] == [[5.0]]
    from analysis.plots import plt
    plt.close("all")
    assert "## The depth task" in (analysed / "report.md").read_text()
