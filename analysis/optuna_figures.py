"""The figures of an Optuna study: the project's own trials figure, Optuna's matplotlib
plots (optimisation history, slices over every searched parameter, and the Pareto front of
a two-objective study) and the parameters' importances as Optuna computes them.

Optuna 2.10's own importance plot calls matplotlib.cm.get_cmap, which matplotlib 3.9
removed, so the importances (optuna.importance, computed once by optuna_study) are drawn
here as the same horizontal bars.

Optuna 2.10 marks its matplotlib plots experimental (an ExperimentalWarning each) and
switches matplotlib's global style to ggplot; both stay inside `_optuna_plot`, so the other
figures of a report look as they always did.
"""

from __future__ import annotations

import warnings

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from analysis.optuna_study import LOG_SCALE, load_study

AXIS_LABELS = {"carry_bias": "carry_bias (initial b_T)", "depth": "depth (layers)",
               "optimizer.learning_rate": "learning rate"}


def drawers(storage: str, name: str, trials: pd.DataFrame) -> dict:
    """Figure name -> a function drawing it, for the figures this study can fill. With several
    objectives, Optuna's history, importances and slices are drawn once per objective
    (`optuna_history_<objective>`, ...); importances only where they could be computed."""
    if trials.empty:
        return {}
    from optuna.visualization import matplotlib as vis

    columns, labels = trials.attrs["objectives"], trials.attrs["labels"]
    params = [p for p in trials.attrs["params"] if pd.api.types.is_numeric_dtype(trials[p])]
    found = trials.attrs.get("importances", {})
    out = {"optuna": lambda: trials_figure(trials, name)}
    for i, (column, label) in enumerate(zip(columns, labels)):
        suffix = "" if len(columns) == 1 else f"_{column}"
        target = {} if len(columns) == 1 else {"target": lambda t, i=i: t.values[i]}
        plot = {"target_name": label, **target}
        out[f"optuna_history{suffix}"] = _later(storage, name, vis.plot_optimization_history,
                                                **plot)
        if column in found:
            out[f"optuna_importances{suffix}"] = (
                lambda values=found[column], label=label: importances_figure(values, label))
        out[f"optuna_slice{suffix}"] = _later(storage, name, vis.plot_slice, params=params,
                                              **plot)
    if len(columns) == 2:
        out["optuna_pareto"] = _later(storage, name, vis.plot_pareto_front,
                                      target_names=list(labels))
    return out


def _later(storage, name, plot, **kwargs):
    return lambda: _optuna_plot(plot, load_study(storage, name), **kwargs)


def _optuna_plot(plot, study, **kwargs) -> plt.Figure:
    """One of Optuna's matplotlib plots as a figure, its warning and style kept local."""
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore", ExperimentalWarning)
        axes = np.atleast_1d(plot(study, **kwargs))
        fig = axes.ravel()[0].figure
        if len(axes.ravel()) > 1:  # slices: one panel per parameter, side by side
            fig.set_size_inches(4.2 * len(axes.ravel()), 4.2)
    return fig


def importances_figure(importances: dict, label: str) -> plt.Figure:
    """Each parameter's importance for one objective, largest on top."""
    ordered = sorted(importances.items(), key=lambda item: item[1])
    fig, ax = plt.subplots(figsize=(6.4, 1.2 + 0.5 * len(ordered)))
    bars = ax.barh([AXIS_LABELS.get(p, p) for p, _ in ordered], [v for _, v in ordered],
                   color="tab:blue")
    ax.bar_label(bars, fmt="%.2f", padding=3)
    ax.set(xlabel=f"importance for {label}", xlim=(0, 1.1),
           title="Hyperparameter importances (random forest, mean decrease in impurity)")
    fig.tight_layout()
    return fig


def trials_figure(trials: pd.DataFrame, study_name: str) -> plt.Figure:
    """Every finished trial in the plane of carry_bias and each other searched parameter
    (depth, learning rate: log axes), coloured by its value (one panel per objective),
    Pareto-optimal trials ringed; then the best value of the first objective per bin of the
    first plane (readable bin edges)."""
    objectives = list(zip(trials.attrs["objectives"], trials.attrs["labels"]))
    params = [p for p in trials.attrs["params"] if pd.api.types.is_numeric_dtype(trials[p])]
    x = "carry_bias" if "carry_bias" in params else params[0]
    ys = [p for p in ("depth", "optimizer.learning_rate") if p in params and p != x]
    planes = [(y, objective) for objective in objectives for y in ys or [None]]
    fig, axes = plt.subplots(1, len(planes) + 1, figsize=(6 * (len(planes) + 1), 4.8),
                             squeeze=False)
    axes = axes.ravel()
    pareto = trials["pareto_optimal"] if "pareto_optimal" in trials else None
    for ax, (y, (value, label)) in zip(axes, planes):
        points = ax.scatter(trials[x], trials[y] if y else trials[value], c=trials[value],
                            cmap="viridis", s=50, edgecolors="white", linewidths=0.5)
        if pareto is not None and pareto.any():
            ax.scatter(trials.loc[pareto, x], trials.loc[pareto, y or value], s=140,
                       facecolors="none", edgecolors="crimson", linewidths=1.5,
                       label="Pareto-optimal")
            ax.legend(loc="best", fontsize=8)
        fig.colorbar(points, ax=ax, label=label)
        _scale(ax, x, trials[x], "x")
        if y:
            _scale(ax, y, trials[y], "y")
        ax.set(xlabel=AXIS_LABELS.get(x, x), ylabel=AXIS_LABELS.get(y, y) if y else label,
               title=f"coloured by {label}")
    fig.suptitle(f"Study {study_name!r}: {len(trials)} finished trials")
    _best_per_bin(axes[-1], trials, x, ys[0] if ys else None, *objectives[0])
    fig.tight_layout()
    return fig


def _best_per_bin(ax, trials, x, y, value, label) -> None:
    """The best value per bin of x (and of y): a heatmap, or bars when only x was searched."""
    binned = trials.assign(x_bin=bins(trials[x], x in LOG_SCALE))
    if y is None:
        best = binned.groupby("x_bin", observed=True)[value].max()
        ax.bar([str(b) for b in best.index], best.to_numpy(), color="tab:green")
        ax.set(xlabel=AXIS_LABELS.get(x, x), ylabel=label, title="Best value per bin")
    else:
        binned["y_bin"] = bins(trials[y], y in LOG_SCALE)
        best = binned.pivot_table(index="y_bin", columns="x_bin", values=value, aggfunc="max",
                                  observed=True).iloc[::-1]  # large values on top, as beside
        sns.heatmap(best, ax=ax, annot=True, fmt=".3g", cmap="viridis",
                    annot_kws={"fontsize": 7}, cbar_kws={"label": label})
        ax.set(xlabel=AXIS_LABELS.get(x, x), ylabel=AXIS_LABELS.get(y, y),
               title="Best value per bin")
    ax.tick_params(axis="x", rotation=30)


def bins(values: pd.Series, log: bool = False, max_bins: int = 6) -> pd.Series:
    """The values in bins with round, readable edges ("-20 to -15", "0.001 to 0.01"): whole
    decades on a log scale; integers keep their own values when there are few of them."""
    values = pd.to_numeric(values)
    whole = bool(np.all(np.isclose(values, np.round(values))))
    if values.nunique() <= 1 or (whole and values.nunique() <= max_bins):
        labels = {v: f"{v:.3g}" for v in sorted(values.unique())}
        return pd.Categorical(values.map(labels), categories=list(dict.fromkeys(
            labels.values())), ordered=True)
    if log and values.min() > 0:
        low, high = np.floor(np.log10(values.min())), np.ceil(np.log10(values.max()))
        step = max(1, int(np.ceil((high - low) / max_bins)))
        edges = 10.0 ** np.arange(low, high + step, step)
    else:
        ticks = MaxNLocator(nbins=max_bins, steps=[1, 2, 2.5, 5, 10]).tick_values(
            values.min(), values.max())
        edges = ticks[max(0, np.searchsorted(ticks, values.min(), side="right") - 1):]
        edges = edges[:np.searchsorted(edges, values.max(), side="left") + 1]
    labels = [f"{lo:g} to {hi:g}" for lo, hi in zip(edges[:-1], edges[1:])]
    return pd.cut(values, bins=edges, labels=labels, include_lowest=True)


def _scale(ax, name, values, axis) -> None:
    """A log axis for parameters searched on one (learning rate; depth when it spans 20x)."""
    values = pd.to_numeric(values)
    if name in LOG_SCALE and values.min() > 0 and (
            name != "depth" or values.max() / values.min() >= 20):
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
