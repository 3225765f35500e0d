"""The study's figures: one function per figure, each from tidy tables, each returning it.

Accuracies are drawn in percent, depth as the number of highway (or plain hidden) layers,
carry_bias as the initial transform-gate bias b_T. With several seeds a heatmap cell shows
the mean (and the sd under it) and line plots show mean +- sd as error bars.
"""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from analysis import tables  # noqa: E402
from highway_study import catalog  # noqa: E402

sns.set_theme(style="whitegrid", context="notebook")
MARK_COLOR = "0.88"


def accuracy_heatmap(runs: pd.DataFrame) -> plt.Figure:
    """Figure 1: mean test accuracy, depth (rows) x carry_bias (columns), a panel per model."""
    cells = tables.cells(runs, "test_accuracy")

    def label(cell):
        text = f"{100 * cell['mean']:.1f}"
        if cell["completed"] > 1 and not pd.isna(cell["sd"]):
            text += f"\n±{100 * cell['sd']:.1f}"
        lost = cell["n"] - cell["completed"]
        return text + (f"\n{lost}/{cell['n']} lost" if lost else "")

    low, high = data_range(100 * cells["mean"]) if "mean" in cells else (0.0, 100.0)
    return grid_figure(cells, lambda c: 100 * c["mean"], label, tables.cell_mark,
                        vmin=low, vmax=high, cmap="viridis", colorbar="test accuracy (%)",
                        title="Final test accuracy (mean over seeds)")


def data_range(values) -> tuple[float, float]:
    """The colour scale's ends: the data's own range (a fixed 0-100 painted 93.6% and
    97.3% one colour), widened to at least a point so that equal values still draw."""
    finite = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
    if finite.empty:
        return 0.0, 100.0
    low, high = float(finite.min()), float(finite.max())
    if high - low < 1.0:
        middle = (high + low) / 2
        low, high = middle - 0.5, middle + 0.5
    return low, high


def epochs_heatmap(runs: pd.DataFrame, threshold: float) -> plt.Figure:
    """Figure 2: epochs until validation accuracy first reaches `threshold`; 'never' marked."""
    cells = tables.cells(runs, "epochs_to_threshold")
    label, mark = reach_labels(digits=1)

    vmax = max(float(runs["epochs_done"].max(skipna=True) or 1), 1.0)
    return grid_figure(cells, lambda c: c["mean"], label, mark, vmin=1, vmax=vmax,
                        cmap="magma_r", colorbar="epochs to threshold",
                        title=f"Epochs until validation accuracy ≥ {100 * threshold:g}%")


def reach_labels(digits: int):
    """(label, mark) for a "how long until the threshold" heatmap: the mean (± sd) over the
    runs that reach it and how many do; cells where none does are marked 'never'."""

    def label(cell):
        text = f"{cell['mean']:.{digits}f}"
        if cell["reached"] > 1 and not pd.isna(cell["sd"]):
            text += f"\n±{cell['sd']:.{digits}f}"
        if cell["reached"] < cell["n"]:
            text += f"\n{cell['reached']}/{cell['n']} reach"
        return text

    def mark(cell):
        return tables.cell_mark(cell) or ("never" if cell["reached"] == 0 else None)

    return label, mark


def accuracy_vs_depth(runs: pd.DataFrame) -> plt.Figure:
    """Figure 3: test accuracy over depth per network (mean ± sd over seeds)."""
    data = runs[runs["status"] == "completed"].assign(
        series=tables.series, accuracy=lambda d: 100 * d["test_accuracy"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    order = _series_order(data)
    sns.lineplot(data=data, x="depth", y="accuracy", hue="series", style="series",
                 hue_order=order, style_order=order, markers=True, dashes=False,
                 errorbar="sd", err_style="bars", ax=ax)
    _log_x_if_wide(ax, data["depth"])
    lost = int((runs["status"] != "completed").sum())
    note = f" ({lost} diverged/failed runs not shown)" if lost else ""
    low, high = ax.get_ylim()  # fitted to the data (a 0-100 axis drew 97.5 and 97.8 as one)
    if high - low < 2:  # equal values: a two-point window, not rounding noise
        low, high = (low + high) / 2 - 1, (low + high) / 2 + 1
    ax.set(xlabel="depth (layers)", ylabel="test accuracy (%)",
           ylim=(max(low, 0.0), min(high, 100.0)), title="Test accuracy vs depth" + note)
    _legend(ax, len(order), None)
    fig.tight_layout()
    return fig


def learning_curves(runs: pd.DataFrame, curves: pd.DataFrame, threshold: float,
                    depths=None) -> plt.Figure:
    """Figure 4: validation accuracy per epoch, one panel per chosen depth."""
    keys = runs.assign(series=tables.series)[["run", "model", "depth", "carry_bias", "series"]]
    data = curves.merge(keys, on="run")
    data = data.dropna(subset=["val_accuracy"]).assign(accuracy=lambda d: 100 * d["val_accuracy"])
    chosen = list(depths) if depths else spread(sorted(data["depth"].unique()), 4)
    data = data[data["depth"].isin(chosen)]
    grid = sns.relplot(data=data, x="epoch", y="accuracy", hue="series", col="depth",
                       hue_order=_series_order(data), col_order=sorted(chosen), kind="line",
                       marker="o", errorbar="sd", col_wrap=min(len(chosen), 4), height=3.2,
                       aspect=1.1)
    for ax in grid.axes.flat:
        ax.axhline(100 * threshold, color="0.5", ls="--", lw=1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if len(_series_order(data)) > MAX_LEGEND:  # a search's many settings: no legend
        grid.legend.remove()
    else:
        grid.legend.set_title("network")
    grid.set_axis_labels("epoch", "validation accuracy (%)")
    grid.set_titles("depth {col_name}")
    grid.set(ylim=(0, 100))
    grid.figure.suptitle(f"Learning curves (dashed: threshold {100 * threshold:g}%)", y=1.02)
    return grid.figure


def gate_heatmap(gates: pd.DataFrame, max_panels: int = 3) -> plt.Figure:
    """Figure 5a: mean transform-gate activity at the end of training, layer x carry_bias."""
    depths = sorted(gates["depth"].unique())
    depths = [d for d in depths if d > 1][-max_panels:] or depths[-1:]
    fig, axes = plt.subplots(1, len(depths), squeeze=False,
                             figsize=(1.0 + 2.6 * len(depths), 2.0 + min(0.22 * max(depths), 12)),
                             layout="constrained")
    vmax = float(gates["gate_activity"].max())
    for k, (ax, depth) in enumerate(zip(axes.flat, depths)):
        pivot = gates[gates["depth"] == depth].pivot_table(
            index="layer", columns="carry_bias", values="gate_activity", aggfunc="mean")
        # Every column labelled, to 3 digits: a search's carry biases are many and not round.
        sns.heatmap(pivot, ax=ax, cmap="viridis", vmin=0, vmax=vmax, annot=bool(depth <= 20),
                    fmt=".2f", annot_kws={"fontsize": 7}, cbar=k == len(depths) - 1,
                    cbar_kws={"label": "mean transform-gate activity T"},
                    xticklabels=[f"{b:.3g}" for b in pivot.columns])
        ax.set(title=f"depth {depth}", xlabel="carry_bias (initial b_T)", ylabel="layer")
    fig.suptitle("Transform-gate activity per layer at the end of training")
    return fig


def effective_depth(runs: pd.DataFrame, gate_threshold: float) -> plt.Figure:
    """Figure 5b: effective depth (layers with mean gate activity > threshold) over depth."""
    data = runs[tables.is_gated(runs["model"]) & runs["effective_depth"].notna()]
    order = _bias_order(data["carry_bias"])
    data = data.assign(carry_bias=data["carry_bias"].map(lambda b: f"{b:g}"))
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    # Lines of different carry biases that coincide stay apart by marker and dash; the
    # "every layer" diagonal is a wide band beneath them.
    sns.lineplot(data=data, x="depth", y="effective_depth", hue="carry_bias", hue_order=order,
                 style="carry_bias", style_order=order, markers=True, dashes=True,
                 errorbar="sd", err_style="bars", ax=ax, zorder=3)
    depths = np.sort(data["depth"].unique().astype(float))
    ax.plot(depths, depths, color="0.6", lw=8, alpha=0.3, solid_capstyle="round",
            label="every layer", zorder=1,  # a band: a line on it stays visible
            marker="o" if len(depths) == 1 else None, markersize=12)  # one depth: a disc
    _log_x_if_wide(ax, data["depth"])
    ax.set(xlabel="depth (layers)", ylabel=f"layers with mean T > {gate_threshold:g}",
           title="Effective depth of highway nets")
    _legend(ax, len(order), "carry_bias")
    fig.tight_layout()
    return fig


def lesion_figure(lesions: pd.DataFrame) -> plt.Figure:
    """Figure 6: accuracy drop when one layer is lesioned (T forced to 0), beside its gate."""
    depth = int(lesions["depth"].max())
    order = _bias_order(lesions["carry_bias"])
    data = lesions[lesions["depth"] == depth].assign(
        carry_bias=lambda d: d["carry_bias"].map(lambda b: f"{b:g}"),
        drop=lambda d: 100 * d["accuracy_drop"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    sns.lineplot(data=data, x="layer", y="drop", hue="carry_bias", hue_order=order,
                 marker="o", errorbar="sd", ax=left)
    left.axhline(0, color="0.5", lw=1)
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.set(xlabel="lesioned layer", ylabel="validation accuracy drop (points)",
             title=f"Lesioning one layer (depth {depth})")
    sns.lineplot(data=data, x="layer", y="gate_activity", hue="carry_bias", hue_order=order,
                 marker="o", errorbar="sd", ax=right, legend=False)
    right.set(xlabel="layer", ylabel="mean transform-gate activity T",
              title="Gate activity of the same layers")
    left.legend(title="carry_bias", fontsize="small")
    fig.tight_layout()
    return fig


def spread(values: list, count: int) -> list:
    """Up to `count` values spread evenly over a sorted list (first and last included)."""
    if len(values) <= count:
        return list(values)
    picks = np.linspace(0, len(values) - 1, count).round().astype(int)
    return [values[i] for i in sorted(set(picks))]


def grid_figure(cells, value, label, mark, vmin, vmax, cmap, colorbar, title,
                norm=None) -> plt.Figure:
    """Depth x carry_bias heatmaps, one panel per model; marked cells hatched and labelled.

    `norm` (e.g. a LogNorm) replaces the linear colour scale from vmin to vmax.
    """
    models = sorted(dict.fromkeys(cells["model"]), key=_family_order)
    rows = cells["depth"].nunique()
    columns = [cells.loc[cells["model"] == m, "carry_bias"].nunique() for m in models]
    fig, axes = plt.subplots(
        1, len(models), squeeze=False, width_ratios=[c + 0.6 for c in columns],
        figsize=(2.2 + 1.1 * sum(columns) + 1.2 * len(models), 1.6 + min(0.42 * rows, 12)),
        layout="constrained")
    for k, (ax, model) in enumerate(zip(axes.flat, models)):
        grid_panel(ax, cells[cells["model"] == model], value, label, mark,
                   dict(vmin=vmin, vmax=vmax, cmap=cmap, norm=norm),
                   colorbar if k == len(models) - 1 else None)
        unused = not catalog.is_gated(model)  # carry_bias means nothing to gateless nets
        ax.set(title=f"{model} ({catalog.family(model)})",
               xlabel="carry_bias (no gate: unused)" if unused else "carry_bias (initial b_T)")
    fig.suptitle(title)
    return fig


def grid_panel(ax, panel, value, label, mark, scale: dict, colorbar=None,
               fontsize: float | None = None) -> None:
    """One depth x carry_bias heatmap of `panel` (cells of one model) on `ax`: `value` and
    `label` per cell, cells that `mark` names hatched; `scale` holds vmin/vmax/cmap/norm;
    a colour bar labelled `colorbar` when given; `fontsize` of the cells' text (default:
    8 points, 6 beyond 12 depths; 0: no text at all, marked cells hatched only and cells
    without a run blank, for grids too crowded to print in)."""
    panel = panel.copy()
    if fontsize is None:
        fontsize = 8 if panel["depth"].nunique() <= 12 else 6
    panel["value"] = panel.apply(value, axis=1) if len(panel) else []
    panel["label"] = [label(c) if mark(c) is None else "" for _, c in panel.iterrows()]
    panel["mark"] = [mark(c) for _, c in panel.iterrows()]
    panel.loc[panel["mark"].notna(), "value"] = np.nan
    grid = panel.pivot(index="depth", columns="carry_bias", values="value").astype(float)
    texts = panel.pivot(index="depth", columns="carry_bias", values="label")
    texts = texts.reindex_like(grid).fillna("")
    if scale.get("norm") is not None:
        scale = {key: v for key, v in scale.items() if key not in ("vmin", "vmax")}
    with warnings.catch_warnings():  # a panel of marked cells only has no value to scale
        warnings.simplefilter("ignore", RuntimeWarning)
        sns.heatmap(grid, ax=ax, annot=texts.to_numpy() if fontsize else False, fmt="",
                    cbar=colorbar is not None, cbar_kws={"label": colorbar},
                    annot_kws={"fontsize": fontsize}, linewidths=0.5, linecolor="white",
                    **scale)
    _mark_cells(ax, panel, grid, fontsize)
    if fontsize:
        _mark_not_run(ax, panel, grid, fontsize)
    # Every column ticked (seaborn thins the ticks of a crowded axis, which left labels
    # and ticks unequal in number); a caller thins the labels where they crowd.
    ax.set_xticks(np.arange(len(grid.columns)) + 0.5, [f"{b:g}" for b in grid.columns])
    ax.set(ylabel="depth (layers)", xlabel="carry_bias (initial b_T)")


def _family_order(model) -> tuple:
    """Models grouped by family, in the catalog's order of families."""
    family = catalog.family(model)
    rank = catalog.FAMILIES.index(family) if family in catalog.FAMILIES else len(catalog.FAMILIES)
    return rank, str(model)


def _mark_not_run(ax, panel, grid, fontsize) -> None:
    """Name the cells of the grid that no run filled, so a blank never reads as a result."""
    ran = set(zip(panel["depth"], panel["carry_bias"]))
    for i, depth in enumerate(grid.index):
        for j, bias in enumerate(grid.columns):
            if (depth, bias) not in ran:
                ax.text(j + 0.5, i + 0.5, "not run", ha="center", va="center",
                        fontsize=fontsize, color="0.45")


def _mark_cells(ax, panel, grid, fontsize) -> None:
    """Hatch and label the cells that have no number (diverged, failed, never reached)."""
    rows, columns = list(grid.index), list(grid.columns)
    for _, cell in panel[panel["mark"].notna()].iterrows():
        i, j = _position(rows, cell["depth"]), _position(columns, cell["carry_bias"])
        if i is None or j is None:  # a depth or carry_bias the pivot has no row for (NaN)
            continue
        ax.add_patch(Rectangle((j, i), 1, 1, facecolor=MARK_COLOR, edgecolor="0.55",
                               hatch="///", lw=0))
        if not fontsize:
            continue
        ax.text(j + 0.5, i + 0.5, cell["mark"], ha="center", va="center",
                fontsize=fontsize + 1, fontweight="bold", color="0.15",
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "lw": 0})


def _position(values: list, value) -> int | None:
    """Where `value` is in `values`, NaN matching NaN; None when it is not there."""
    for index, item in enumerate(values):
        if pd.isna(item) or pd.isna(value):
            if pd.isna(item) and pd.isna(value):
                return index
        elif item == value:
            return index
    return None


MAX_LEGEND = 12  # more entries than this (an Optuna search's trials) are not listed


def _legend(ax, entries: int, title) -> None:
    """A legend of up to MAX_LEGEND entries; beyond that, a note instead (the settings of
    each line are in runs.csv)."""
    if entries > MAX_LEGEND:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
        ax.set_title(f"{ax.get_title()}\n({entries} settings, one line each: see runs.csv)",
                     fontsize="small")
        return
    ax.legend(title=title, fontsize="small")


def _series_order(data) -> list[str]:
    """Networks in a fixed order (model, then carry_bias), so colours match across figures."""
    ordered = data.sort_values(["model", "carry_bias"])
    return list(dict.fromkeys(ordered["series"]))


def _bias_order(biases) -> list[str]:
    return [f"{b:g}" for b in sorted(biases.dropna().unique())]


def _log_x_if_wide(ax, depths) -> None:
    """A log axis for depths spanning a factor 20 or more, ticked at the depths themselves
    (matplotlib's 10^0, 10^1 left depth 20 unlabelled); a linear one is ticked at the
    depths too where there are few (else at whole numbers: never a depth of 2.5)."""
    depths = pd.to_numeric(pd.Series(depths), errors="coerce").dropna()
    ticks = sorted({float(d) for d in depths if d > 0})
    if len(ticks) and depths.max() / max(depths.min(), 1) >= 20:
        ax.set_xscale("log")
        ax.set_xticks(ticks, [f"{d:g}" for d in ticks])
        ax.minorticks_off()
    elif 0 < depths.nunique() <= MAX_DEPTH_TICKS:
        ticks = sorted({float(d) for d in depths})
        ax.set_xticks(ticks, [f"{d:g}" for d in ticks])
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


MAX_DEPTH_TICKS = 12  # a linear depth axis with more depths than this is ticked by matplotlib
