"""The paper's Figure 1 section: fabricated Optuna trials of plain and highway nets at two
depths, with known training losses -> the best trial per network, its curve, the budget
table and the depth comparison; runs of other experiments are left out of it."""

from __future__ import annotations

import json

import pytest

from analysis.__main__ import main
from analysis.collect import collect
from analysis.study import paper_fig1
from test_analysis import config

STEPS_PER_EPOCH = 400
# (model, depth, learning rate, carry bias) -> training loss per epoch (None: diverged)
TRIALS = {
    ("plain_fc", 10, 0.05, -2.0): [0.5, 0.20, 0.10],
    ("plain_fc", 10, 0.5, -2.0): [0.6, 0.30, 0.25],
    ("plain_fc", 100, 0.01, -2.0): [2.3, 2.30, 2.30],
    ("plain_fc", 100, 0.9, -2.0): [2.3, None],
    ("highway_fc", 10, 0.1, -3.0): [0.4, 0.15, 0.08],
    ("highway_fc", 10, 0.02, -1.5): [0.7, 0.40, 0.30],
    ("highway_fc", 100, 0.2, -4.5): [0.5, 0.20, 0.12],
}


def write_trial(folder, number, model, depth, rate, bias, losses, experiment="paper_fig1"):
    run = folder / f"{model}_depth{depth}" / str(number)
    run.mkdir(parents=True)
    cfg = config(model, depth, bias, 0)
    cfg["optimizer"] = {"name": "momentum", "learning_rate": rate, "momentum": 0.9}
    cfg["tags"] = {"experiment": experiment}
    diverged = losses[-1] is None
    finite = [x for x in losses if x is not None]
    with open(run / "metrics.jsonl", "w") as stream:
        for epoch, loss in enumerate(finite, start=1):
            stream.write(json.dumps({"epoch": epoch, "step": STEPS_PER_EPOCH * epoch,
                                     "train_loss": loss, "val_accuracy": 1 - loss / 3}) + "\n")
    with open(run / "curve.jsonl", "w") as stream:  # two points per epoch, halfway first
        stream.write(json.dumps({"step": 0, "train_loss": None, "val_accuracy": 0.1}) + "\n")
        for epoch, loss in enumerate(finite, start=1):
            for half in (1, 2):
                stream.write(json.dumps({"step": STEPS_PER_EPOCH * (epoch - 1 + half / 2),
                                         "train_loss": loss * (1.5 if half == 1 else 1.0),
                                         "val_accuracy": 0.5}) + "\n")
    summary = {"schema": 1, "status": "diverged" if diverged else "completed", "error": None,
               "test_accuracy": None if diverged else 1 - finite[-1] / 4,
               "best_val_accuracy": 1 - min(finite) / 3, "final_val_accuracy": 0.5,
               "epochs": len(finite), "steps": STEPS_PER_EPOCH * len(finite), "params": 1,
               "wall_seconds": 1.0, "gate_activity": [], "config": cfg}
    (run / "summary.json").write_text(json.dumps(summary))


@pytest.fixture
def sweep(tmp_path):
    folder = tmp_path / "paper_fig1"
    for number, ((model, depth, rate, bias), losses) in enumerate(TRIALS.items()):
        write_trial(folder, number, model, depth, rate, bias, losses)
    write_trial(tmp_path / "other", 99, "highway_fc", 10, 0.3, -2.0, [0.01, 0.001, 0.0001],
                experiment="blog_depth_bias")  # better, but not one of Figure 1's trials
    return tmp_path


def test_the_best_trial_per_network_is_the_lowest_final_training_loss(sweep):
    figure1 = paper_fig1.prepare(collect([sweep]))
    assert len(figure1.trials) == len(TRIALS)  # the other experiment's run is left out
    best = {(b.family, b.depth): (b.learning_rate, b.final_train_loss)
            for b in figure1.best.itertuples()}
    assert best == {("plain", 10): (0.05, 0.10), ("plain", 100): (0.01, 2.30),
                    ("highway", 10): (0.1, 0.08), ("highway", 100): (0.2, 0.12)}
    curve = figure1.curves[figure1.curves["run"] == figure1.best.iloc[0].run]
    # steps / 400 per epoch; step 0, whose training loss is null, is left out
    assert list(curve["epoch"]) == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    assert paper_fig1.answer(figure1.best) == (
        "Highway nets: final training loss 0.08 at depth 10 and 0.12 at depth 100 (1.5x). "
        "Plain nets: final training loss 0.1 at depth 10 and 2.3 at depth 100 (23x).")


def test_python_m_analysis_writes_the_section_and_its_figure(sweep, capsys):
    out = sweep / "analysis"
    assert main([str(sweep / "paper_fig1"), "--out", str(out)]) == 0
    assert "paper_fig1.md" in capsys.readouterr().out
    text = (out / "paper_fig1.md").read_text()
    assert "| plain | 100 | 2 (1) | 3 | 0.01 | – | 2.3 |" in text  # one trial diverged
    assert "| highway | 100 | 1 (1) | 3 | 0.2 | -4.50 | 0.12 |" in text
    assert "![Figure 1](figures/paper_fig1_training_loss.png)" in text
    assert (out / "figures" / "paper_fig1_training_loss.png").stat().st_size > 0
    assert text.strip() in (out / "report.md").read_text()
    assert len((out / "paper_fig1_trials.csv").read_text().splitlines()) == len(TRIALS) + 1


def test_no_section_without_figure_1_trials(sweep):
    assert paper_fig1.prepare(collect([sweep / "other"])) is None
    out = sweep / "analysis_other"
    assert main([str(sweep / "other"), "--out", str(out)]) == 0
    assert not (out / "paper_fig1.md").exists()
