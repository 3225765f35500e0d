"""Aggregates over seeds that both the figures and the report use, so they show one number.

Every cell of the study's grid (model, depth, carry_bias) becomes one row: the mean and
standard deviation over its seeds, and how many of its runs completed, diverged or failed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from highway_study import catalog

CELL = ["model", "depth", "carry_bias"]


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
