"""analysis end to end on a real (tiny, synthetic-data) Hydra sweep of highway_study."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from analysis.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_real_sweep_is_analysed_end_to_end(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    command = [sys.executable, "-m", "highway_study", "-m", "data=synthetic", "depth=1,2",
               "carry_bias=-1,-3", "epochs=2", "tensorboard=false", "lesion_every=1",
               "eval_every=5", f"hydra.sweep.dir={sweep}"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]

    assert main([str(sweep)]) == 0
    out = sweep / "analysis"
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(zip(runs["depth"], runs["carry_bias"])) == [
        (1, -3.0), (1, -1.0), (2, -3.0), (2, -1.0)]
    assert set(runs["status"]) == {"completed"}
    assert runs["test_accuracy"].between(0, 1).all()
    assert (runs["effective_depth"] <= runs["depth"]).all()
    for name in ("accuracy_heatmap", "epochs_heatmap", "accuracy_vs_depth", "learning_curves",
                 "gate_activity", "effective_depth", "lesion"):
        assert (out / "figures" / f"{name}.png").exists(), name
    for name in ("steps_heatmap", "budget_heatmaps", "step_curves", "gate_dynamics",
                 "gate_shift_heatmap"):
        assert (out / "figures" / f"{name}.png").exists(), name
    assert (runs["curve_last_step"] == 8).all()  # 2 epochs of 4 steps (400 examples, batch 128)
    report = (out / "report.md").read_text()
    assert "4 runs (4 completed)" in report and "a point every 5 steps" in report
    # Only highway runs: question 1 says what is missing and how to get it.
    assert "experiment=blog_baselines" in report
    assert "analysis" not in capsys.readouterr().err
