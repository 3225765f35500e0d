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


PAGE_WIDTH = 10.0  # inches: the widest budget figure, so that its numbers stay readable
MIN_FONT = 7.0  # points: the smallest number printed in a cell (smaller cells: colour only)


def budget_heatmaps(runs: pd.DataFrame, budgets: list[int]) -> plt.Figure:
    """Validation accuracy after each step budget: one heatmap per budget (columns) and
    model (rows), one colour scale, so the grid can be read filling in over training. A
    row shares its depth axis only with itself: models differ in the depths they ran.

    A budget reads each run's last curve point at or before it (tables.with_budgets), so a
    panel's title names the step read: "after 200 steps (budget 250)" at a point every 100
    steps. Budgets that every run reads at step 0 (runs shorter than the spacing of their
    points: "after 5 steps" of a 20-step run with points at 0 and 20) are left out and named
    in the title; a cell whose runs read step 0 while others have a point is marked "step 0".

    The figure is at most PAGE_WIDTH wide, its numbers at least MIN_FONT: they lose their
    decimal where one row of panels would print it smaller, a model's budgets wrap onto
    several rows where even whole numbers would be, and where not even one panel per row
    fits them, the cells show colour only (runs.csv has the numbers)."""
    models = sorted(dict.fromkeys(runs["model"]), key=plots._family_order)
    kept = [b for b in budgets if not _only_step_zero(runs, b)]
    dropped = [b for b in budgets if b not in kept]
    if not kept:
        return _no_budget_figure(dropped)
    width = runs["carry_bias"].nunique()
    rows = runs["depth"].nunique()
    row_height = min(0.4 * rows, 10) / max(rows, 1)
    per_row, figure_width, cell, digits, fontsize = _layout(len(kept), width, row_height)
    chunks = -(-len(kept) // per_row)
    fig, axes = plt.subplots(len(models) * chunks, per_row, squeeze=False, sharey="row",
                             figsize=(figure_width,
                                      (1.6 + min(0.4 * rows, 10)) * len(models) * chunks),
                             layout="constrained")

    # One colour scale for every panel, spanning the data (0-100 painted 87% and 99% alike).
    low, high = plots.data_range(pd.concat(
        [100 * pd.to_numeric(runs[budget_column(b)], errors="coerce") for b in kept]))

    def label(cell):
        return "" if digits is None else f"{100 * cell['mean']:.{digits}f}"

    for i, model in enumerate(models):
        part = runs[runs["model"] == model]
        for k in range(chunks * per_row):
            ax = axes[i * chunks + k // per_row, k % per_row]
            if k >= len(kept):
                ax.set_visible(False)
                continue
            budget = kept[k]
            early = _reads_step_zero(part, budget)

            def mark(cell, early=early):
                found = tables.cell_mark(cell)
                if found or cell["reached"] > 0:
                    return found
                return "step 0" if (cell["model"], cell["depth"], cell["carry_bias"]) in early \
                    else "short"

            cells = tables.cells(_without_step_zero(part, budget), budget_column(budget))
            last = k % per_row == per_row - 1 or k == len(kept) - 1
            plots.grid_panel(ax, cells, lambda c: 100 * c["mean"], label, mark,
                             dict(vmin=low, vmax=high, cmap="viridis"),
                             "validation accuracy (%)" if last else None,
                             fontsize=fontsize)
            ax.set_title(f"{model}: {_read_title(part, budget)}", fontsize=9)
            bottom = chunks > 1 or i == len(models) - 1
            ax.set_xlabel("carry_bias (initial b_T)" if bottom else "", fontsize=9)
            ax.set_ylabel("depth (layers)" if k % per_row == 0 else "", fontsize=9)
            ax.tick_params(axis="y", labelsize=8)
            _thin_ticks(ax, cell)
            bar = ax.collections[0].colorbar if ax.collections else None
            if bar is not None:
                bar.ax.tick_params(labelsize=8)
                bar.set_label("validation accuracy (%)", fontsize=9)
    notes = ["each run read at its last point at or before the budget",
             '"short": no run that long']
    if any(_reads_step_zero(runs, b) for b in kept):
        notes.append('"step 0": no point between step 0 and the budget')
    if dropped:
        notes.append(f"budget{'s' if len(dropped) > 1 else ''} "
                     f"{', '.join(f'{b:,}' for b in dropped)} left out: no run has a point "
                     "after step 0 by then")
    if digits is None:
        notes.append("too many cells to print in: hatched, no number (diverged, failed, "
                     "short); blank, not run; the numbers are in runs.csv")
    fig.suptitle("Validation accuracy (%) after step budgets\n" + "\n".join(notes),
                 fontsize=9)
    return fig


def _layout(budgets: int, width: int, row_height: float):
    """(panels per row, figure width, cell width in inches, decimals, font size): the most
    panels per row whose cells print a number at MIN_FONT or more (one decimal where it
    fits, else whole numbers); every panel in one row with colour only (decimals None)
    where not even one panel per row does."""
    options = []
    for per_row in range(budgets, 0, -1):
        panel = max(2.1, 0.55 * width + 0.6)  # room for a title of two short lines
        figure_width = min(PAGE_WIDTH, max(5.5, 1.5 + panel * per_row))
        cell = ((figure_width - 1.5) / per_row - 0.6) / max(width, 1)
        options.append((per_row, figure_width, cell, *_annotation(cell, row_height)))
    return next((option for option in options if option[3] is not None), options[0])


def _annotation(cell_width: float, cell_height: float) -> tuple[int | None, float]:
    """(decimals, font size in points) of the numbers that fit a cell of this size in
    inches: '97.3' where it fits at MIN_FONT or more, else '97', else no text at all
    (None, 0)."""
    for digits, characters in ((1, 5), (0, 3)):  # "100.0", "100"
        size = min(9.0, 0.85 * 72 * cell_width / (0.6 * characters), 0.6 * 72 * cell_height)
        if size >= MIN_FONT:
            return digits, round(size, 1)
    return None, 0


def _thin_ticks(ax, cell_width: float) -> None:
    """Carry-bias labels that fit their cells: upright where they fit, else turned on end,
    and then only every k-th one where even that is too crowded."""
    labels = ax.get_xticklabels()
    size = 8 if cell_width >= 0.25 else 6
    longest = max((len(t.get_text()) for t in labels), default=1)
    upright = 0.6 * size / 72 * longest <= 0.95 * cell_width
    step = 1 if upright else max(1, int(np.ceil(1.4 * size / 72 / cell_width)))
    for k, text in enumerate(labels):
        text.set_visible(k % step == 0)
        text.set_fontsize(size)
        text.set_rotation(0 if upright else 90)


def _steps_read(runs: pd.DataFrame, budget: int) -> pd.Series:
    """The step each completed run's value for `budget` was read at (NaN: none); NaN
    throughout for a runs table without step_read columns (made before them)."""
    column = tables.step_read_column(budget)
    if column not in runs:
        return pd.Series(np.nan, index=runs.index)
    read = runs[budget_column(budget)].notna() & (runs["status"] == "completed")
    return runs[column].where(read)


def _reads_step_zero(runs: pd.DataFrame, budget: int) -> set:
    """The cells (model, depth, carry_bias) with a run whose value for `budget` is its
    step-0 point: its accuracy before training, not after `budget` steps."""
    zero = runs[_steps_read(runs, budget) == 0]
    return set(zip(zero["model"], zero["depth"], zero["carry_bias"]))


def _only_step_zero(runs: pd.DataFrame, budget: int) -> bool:
    steps = _steps_read(runs, budget).dropna()
    return bool(len(steps)) and bool((steps == 0).all())


def _without_step_zero(runs: pd.DataFrame, budget: int) -> pd.DataFrame:
    """`runs` with the values read at step 0 for `budget` blanked (such a cell is marked)."""
    column = budget_column(budget)
    return runs.assign(**{column: runs[column].where(_steps_read(runs, budget) != 0)})


def _read_title(runs: pd.DataFrame, budget: int) -> str:
    """'after 250 steps' where every run was read at the budget itself; else the steps
    actually read, 'after 200 steps (budget 250)' or 'after 100-200 steps (budget 250)'."""
    steps = _steps_read(runs, budget)
    steps = sorted({int(s) for s in steps.dropna() if s > 0})
    if not steps or steps == [budget]:
        return f"after {budget:,} steps"
    shown = f"{steps[0]:,}" if len(steps) == 1 else f"{steps[0]:,}-{steps[-1]:,}"
    return f"after {shown} steps\n(budget {budget:,})"


def _no_budget_figure(dropped: list[int]) -> plt.Figure:
    """A figure that says why there is no heatmap: every budget reads step 0 only."""
    fig, ax = plt.subplots(figsize=(6, 1.5))
    ax.axis("off")
    ax.text(0.5, 0.5, f"No budget to draw: every run reads budgets "
            f"{', '.join(f'{b:,}' for b in dropped)} at step 0 (no later point before them)",
            ha="center", va="center", wrap=True)
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
    table.columns = [int(step) for step in table.columns]  # "120", not "120.0"
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
