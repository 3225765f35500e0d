"""Figures at step resolution (curve.jsonl): how the depth x carry_bias grid fills in over
training, learning curves over steps, and how the transform gates move.

Like analysis.plots, each function takes tidy tables and returns a figure; heatmaps over
the grid are drawn by plots.grid_figure / grid_panel so they look like the others.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import LogNorm

from analysis import plots, tables


def steps_heatmap(runs: pd.DataFrame, threshold: float) -> plt.Figure:
    """Optimizer steps until validation accuracy first reaches `threshold` (log colour);
    cells where no run reaches it are marked 'never'."""
    cells = tables.cells(runs, "curve_steps_to_threshold")
    label, mark = plots.reach_labels(digits=0)

    reached = runs["curve_steps_to_threshold"].dropna()
    low = max(float(reached.min()) if len(reached) else 1.0, 1.0)
    high = max(float(runs["curve_last_step"].max(skipna=True) or 1.0), low * 10)
    return plots.grid_figure(
        cells, lambda c: max(c["mean"], low), label, mark, vmin=None, vmax=None,
        cmap="magma_r", colorbar="optimizer steps to threshold (log scale)",
        title=f"Steps until validation accuracy ≥ {100 * threshold:g}%",
        norm=LogNorm(vmin=low, vmax=high))


def budget_heatmaps(runs: pd.DataFrame, budgets: list[int]) -> plt.Figure:
    """Validation accuracy after each step budget: one heatmap per budget (columns) and
    model (rows), one colour scale, so the grid can be read filling in over training. A
    row shares its depth axis only with itself: models differ in the depths they ran."""
    models = sorted(dict.fromkeys(runs["model"]), key=plots._family_order)
    width = runs["carry_bias"].nunique()
    rows = runs["depth"].nunique()
    fig, axes = plt.subplots(len(models), len(budgets), squeeze=False, sharey="row",
                             figsize=(1.5 + (1.0 * width + 0.8) * len(budgets),
                                      (1.4 + min(0.4 * rows, 10)) * len(models)),
                             layout="constrained")

    def label(cell):
        return f"{100 * cell['mean']:.1f}"

    def mark(cell):
        return tables.cell_mark(cell) or ("short" if cell["reached"] == 0 else None)

    for i, model in enumerate(models):
        for j, budget in enumerate(budgets):
            cells = tables.cells(runs[runs["model"] == model], budget_column(budget))
            last = j == len(budgets) - 1
            plots.grid_panel(axes[i, j], cells, lambda c: 100 * c["mean"], label, mark,
                             dict(vmin=0, vmax=100, cmap="viridis"),
                             "validation accuracy (%)" if last else None)
            axes[i, j].set_title(f"{model}: after {budget:,} steps")
            if j:
                axes[i, j].set_ylabel("")
    fig.suptitle("Validation accuracy after fixed step budgets (\"short\": no run that long)")
    return fig


def step_curves(runs: pd.DataFrame, points: pd.DataFrame, threshold: float,
                depths=None) -> plt.Figure:
    """Validation accuracy over optimizer steps: mean over seeds with a band of ± sd, one
    panel per depth, one colour per network (carry bias)."""
    keys = runs.assign(series=tables.series)[["run", "model", "depth", "carry_bias", "series"]]
    data = points.merge(keys, on="run").dropna(subset=["val_accuracy"])
    data = data.assign(accuracy=100 * data["val_accuracy"])
    chosen = list(depths) if depths else plots.spread(sorted(data["depth"].unique()), 4)
    data = data[data["depth"].isin(chosen)]
    grid = sns.relplot(data=data, x="step", y="accuracy", hue="series", col="depth",
                       hue_order=plots._series_order(data), col_order=sorted(chosen),
                       kind="line", errorbar="sd", col_wrap=min(len(chosen), 4),
                       height=3.2, aspect=1.2)
    for ax in grid.axes.flat:
        ax.axhline(100 * threshold, color="0.5", ls="--", lw=1)
    grid.legend.set_title("network")
    grid.set_axis_labels("optimizer step", "validation accuracy (%)")
    grid.set_titles("depth {col_name}")
    grid.set(ylim=(0, 100))
    grid.figure.suptitle("Learning curves over steps: mean over seeds, band ± sd "
                         f"(dashed: threshold {100 * threshold:g}%)", y=1.02)
    return grid.figure


def gate_dynamics(gate_points: pd.DataFrame, run: str, title: str) -> plt.Figure:
    """Mean transform-gate activity of every layer (rows) at every point (columns) of one
    run; a log colour scale when the values span more than two decades."""
    table = gate_points[gate_points["run"] == run].pivot_table(
        index="layer", columns="step", values="gate_activity", aggfunc="mean")
    values = table.to_numpy()
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    log = low > 0 and high / low > 100
    depth = len(table.index)
    fig, ax = plt.subplots(figsize=(9, 2.5 + min(0.2 * depth, 9)), layout="constrained")
    sns.heatmap(table, ax=ax, cmap="viridis",
                norm=LogNorm(vmin=low, vmax=high) if log else None,
                vmin=None if log else 0, vmax=None if log else max(high, 1e-12),
                cbar_kws={"label": "mean transform gate T" + (" (log scale)" if log else "")},
                xticklabels=max(1, len(table.columns) // 10),
                yticklabels=max(1, depth // 20))
    ax.set(xlabel="optimizer step", ylabel="highway layer", title=title)
    return fig


def gate_shift_heatmap(runs: pd.DataFrame) -> plt.Figure:
    """Per grid cell: how far the gates moved from their start, mean |T(end) - T(start)|
    over layers (log colour), for the gated models."""
    gated = runs[tables.is_gated(runs["model"])]
    cells = tables.cells(gated, "gate_shift")
    moved = gated["gate_shift"].dropna()
    moved = moved[moved > 0]
    low = float(moved.min()) if len(moved) else 1e-6
    high = max(float(moved.max()) if len(moved) else 1.0, low * 10)

    def label(cell):
        return f"{cell['mean']:.2g}"

    def mark(cell):
        return tables.cell_mark(cell) or ("n/a" if cell["reached"] == 0 else None)

    return plots.grid_figure(
        cells, lambda c: min(max(c["mean"], low), high), label, mark, vmin=None, vmax=None,
        cmap="viridis", colorbar="mean |T(end) - T(start)| over layers (log scale)",
        title="How far the transform gates moved during training",
        norm=LogNorm(vmin=low, vmax=high))


def budget_column(budget: int) -> str:
    return f"accuracy_after_{budget}"
