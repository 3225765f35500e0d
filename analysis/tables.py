"""Aggregates over seeds that both the figures and the report use, so they show one number.

Every cell of the study's grid (model, depth, carry_bias) becomes one row: the mean and
standard deviation over its seeds, and how many of its runs completed, diverged or failed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from highway_study import catalog, convergence

CELL = ["model", "depth", "carry_bias"]
STANDARD_BUDGETS = (250, 1000, 5000)  # step budgets of the small-multiple heatmaps


def is_gated(models: pd.Series) -> pd.Series:
    """Models with transform gates (the catalog says which): gate and lesion figures."""
    return models.map(catalog.is_gated).astype(bool)


def fully_connected(runs: pd.DataFrame, family: str) -> pd.DataFrame:
    """The runs of one family's fully connected models (the blog's questions are about
    those; conv nets have their own runs)."""
    dense = runs["model"].map(lambda m: catalog.spec(m).layout == "dense")
    return runs[dense & (runs["family"] == family)]


def series(runs: pd.DataFrame) -> pd.Series:
    """One label per compared network: gated nets per carry bias; the others alone (the
    carry bias means nothing to them)."""
    bias = runs["carry_bias"].map(lambda b: f"{b:g}")
    gated = is_gated(runs["model"])
    return runs["model"].where(~gated, runs["model"] + ", carry_bias " + bias)


def cells(runs: pd.DataFrame, value: str) -> pd.DataFrame:
    """Per grid cell: n runs, counts per status, mean/sd of `value` over completed runs."""
    completed = runs["status"] == "completed"
    frame = runs.assign(
        completed=completed,
        diverged=runs["status"] == "diverged",
        failed=runs["status"] == "failed",
        interrupted=runs["status"] == "interrupted",
        value=runs[value].where(completed),
        reached=completed & runs[value].notna(),
    )
    grouped = frame.groupby(CELL, dropna=False, sort=True)
    table = grouped.agg(
        n=("run", "size"), completed=("completed", "sum"), diverged=("diverged", "sum"),
        failed=("failed", "sum"), interrupted=("interrupted", "sum"),
        reached=("reached", "sum"), mean=("value", "mean"), sd=("value", "std"),
    )
    return table.reset_index()


def cell_mark(cell) -> str | None:
    """Why a cell has no number: 'div', 'fail' or 'int' when none of its runs completed."""
    if cell["completed"] > 0:
        return None
    if cell["diverged"] > 0:
        return "div"
    if cell["failed"] > 0:
        return "fail"
    return "int"


def highway_gates(collection) -> pd.DataFrame:
    """Final gate activity per highway layer, with each run's depth, carry_bias and seed."""
    runs = collection.runs
    keys = runs.loc[is_gated(runs["model"]), ["run", "depth", "carry_bias", "seed"]]
    return collection.gates.merge(keys, on="run")


def lesion_table(collection) -> pd.DataFrame:
    """Lesion drops with each run's depth, carry_bias and seed, and the layer's gate activity."""
    runs = collection.runs[["run", "model", "depth", "carry_bias", "seed"]]
    table = collection.lesions.merge(runs, on="run")
    return table.merge(collection.gates, on=["run", "layer"], how="left")


def default_budgets(runs: pd.DataFrame) -> list[int]:
    """Step budgets for the small multiples: the standard ones the runs reach, and the
    longest run's length; a quarter, half and all of it for runs shorter than 250 steps."""
    longest = runs["curve_last_step"].max(skipna=True)
    if pd.isna(longest) or longest < 1:
        return []
    longest = int(longest)
    budgets = [b for b in STANDARD_BUDGETS if b <= longest]
    if not budgets:
        return sorted({max(1, round(longest * f)) for f in (0.25, 0.5, 1.0)})
    return budgets if budgets[-1] == longest else budgets + [longest]


def with_budgets(runs: pd.DataFrame, points: pd.DataFrame, budgets) -> pd.DataFrame:
    """`runs` with two columns per budget: accuracy_after_<budget>, validation accuracy at
    the last point at or before it (NaN for a run that stopped earlier or has no curve), and
    step_read_after_<budget>, the step of that point. The two differ where points are
    sparse: with a point every 100 steps, "after 250 steps" reads step 200, and a run
    shorter than the spacing (points at steps 0 and 20) reads step 0, its untrained
    accuracy, for budgets 5 and 10; figures name the step read (budget_heatmaps)."""
    by_run = {run: group[["step", "val_accuracy"]].to_dict("records")
              for run, group in points.groupby("run")} if len(points) else {}
    runs = runs.copy()
    for budget in budgets:
        runs[f"accuracy_after_{budget}"] = [
            _nan(convergence.accuracy_at(by_run.get(run, []), budget)) for run in runs["run"]]
        runs[step_read_column(budget)] = [
            _nan(step_read(by_run.get(run, []), budget)) for run in runs["run"]]
    return runs


def step_read_column(budget: int) -> str:
    return f"step_read_after_{budget}"


def step_read(points: list[dict], budget: int) -> int | None:
    """The step of the point convergence.accuracy_at reads for `budget`: the last point at
    or before it; None where it reads none (the run stopped before `budget` steps)."""
    pairs = convergence.measured(points)
    if not pairs or pairs[-1][0] < budget:
        return None
    before = [step for step, _ in pairs if step <= budget]
    return before[-1] if before else None


def gate_run(runs: pd.DataFrame, gate_points: pd.DataFrame) -> str | None:
    """The run whose gate dynamics are drawn by default: the deepest gated run with a
    curve, then the best test accuracy, then the lowest seed."""
    recorded = runs[runs["run"].isin(set(gate_points["run"])) & is_gated(runs["model"])]
    if recorded.empty:
        return None
    ordered = recorded.sort_values(["depth", "test_accuracy", "seed"],
                                   ascending=[False, False, True], na_position="last")
    return str(ordered["run"].iloc[0])


def _nan(value) -> float:
    return np.nan if value is None else float(value)


def percent(mean, sd=np.nan, n: int = 1) -> str:
    """'97.1%' or '97.1 ± 0.3%' (sd shown when there are several seeds)."""
    if mean is None or pd.isna(mean):
        return "n/a"
    if n > 1 and not pd.isna(sd):
        return f"{100 * mean:.1f} ± {100 * sd:.1f}%"
    return f"{100 * mean:.1f}%"


def number(mean, sd=np.nan, n: int = 1, digits: int = 1) -> str:
    """'2.5' or '2.5 ± 0.7' (sd shown when there are several seeds)."""
    if mean is None or pd.isna(mean):
        return "n/a"
    if n > 1 and not pd.isna(sd):
        return f"{mean:.{digits}f} ± {sd:.{digits}f}"
    return f"{mean:.{digits}f}"
