"""The needs-depth study's figures: the tent grid beside the MNIST grid, and the transform
gates of cells that learn the task against those that do not.

Heatmaps are drawn by plots.grid_panel, so they read like the study's other grids. Each
grid keeps its own colour scale, from its chance level to 100%, because the two tasks'
chance levels (50% and 10%) differ: one scale would hide the tent grid's range.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns

from analysis import plots, tables
from analysis.study import needs_depth
from analysis.plots import MaxNLocator, plt
from highway_study import record

FLOOR = 1e-12  # gates shut to float precision are drawn here on the log axis


def heatmaps(panels: list[tuple[str, pd.DataFrame]]) -> plt.Figure:
    """Mean test accuracy over depth x carry bias of the highway runs of each (title,
    runs) panel, side by side; each colour bar starts at its data's chance level, which it
    names, and marks the accuracy from which a cell learns."""
    grids = [(title, needs_depth.family_runs(runs, "highway"), needs_depth.data_chance(runs))
             for title, runs in panels]
    columns = [max(g["carry_bias"].nunique(), 1) for _, g, _ in grids]
    rows = max(g["depth"].nunique() for _, g, _ in grids)
    fig, axes = plt.subplots(1, len(grids), squeeze=False,
                             width_ratios=[c + 1.2 for c in columns],
                             figsize=(1.5 + sum(1.05 * c + 1.6 for c in columns),
                                      1.8 + min(0.45 * rows, 12)),
                             layout="constrained")
    for ax, (title, runs, chance) in zip(axes.flat, grids):
        cells = tables.cells(runs, "test_accuracy")
        plots.grid_panel(ax, cells, lambda c: 100 * c["mean"], _label, tables.cell_mark,
                         dict(vmin=100 * chance, vmax=100, cmap="viridis"),
                         colorbar="mean test accuracy (%)")
        _mark_scale(ax, chance)
        ax.set_title(title)
    fig.suptitle("Highway nets: final test accuracy over depth x carry bias (mean over seeds)")
    return fig


def gate_profiles(profile: pd.DataFrame, max_panels: int = 4) -> plt.Figure:
    """Mean transform gate T per layer at the end of training, runs that learn against runs
    of the same cells that do not (needs_depth.gate_profile), one panel per depth; log scale, so gates shut near sigmoid(-20) show
    beside open ones. Median over runs with the band of their middle half: on a log scale
    a mean is the largest value's and mean - sd falls below zero."""
    both = profile.groupby("depth")["group"].nunique()
    depths = sorted(both[both == 2].index) or sorted(both.index)
    depths = plots.spread([d for d in depths if d > 1] or depths, max_panels)
    data = profile[profile["depth"].isin(depths)].assign(
        gate=lambda d: np.maximum(d["gate_activity"].astype(float), FLOOR))
    fig, axes = plt.subplots(1, len(depths), squeeze=False, sharey=True,
                             figsize=(1.5 + 3.4 * len(depths), 4.2), layout="constrained")
    order = ["learns", "does not learn"]
    for k, (ax, depth) in enumerate(zip(axes.flat, depths)):
        sns.lineplot(data=data[data["depth"] == depth], x="layer", y="gate", hue="group",
                     hue_order=order, estimator="median", errorbar=("pi", 50), ax=ax,
                     legend=k == 0)
        ax.axhline(record.USED_GATE, color="0.4", ls="--", lw=1)
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(title=f"depth {depth}", xlabel="layer", ylabel="mean transform gate T")
    axes.flat[0].legend(title=f"run (dashed: T = {record.USED_GATE:g}, the least a used layer has)",
                        fontsize="small", title_fontsize="small")
    fig.suptitle("Transform gates at the end of training: runs that learn the task vs runs of "
                 "the same cells that do not (median, band: middle half)")
    return fig


def _label(cell) -> str:
    text = f"{100 * cell['mean']:.1f}"
    if cell["completed"] > 1 and not pd.isna(cell["sd"]):
        text += f"\n±{100 * cell['sd']:.1f}"
    lost = cell["n"] - cell["completed"]
    return text + (f"\n{lost}/{cell['n']} lost" if lost else "")


def _mark_scale(ax, chance: float) -> None:
    """Name chance at the foot of the panel's colour bar and draw the learning mark."""
    bar = ax.collections[0].colorbar if ax.collections else None
    if bar is None:
        return
    mark = needs_depth.learn_mark(chance)
    bar.set_ticks([100 * chance, 100 * mark, 100])
    bar.set_ticklabels([f"chance {100 * chance:g}", f"learns {100 * mark:g}", "100"])
    bar.ax.axhline(100 * mark, color="white", lw=2)
