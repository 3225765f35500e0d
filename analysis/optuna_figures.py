"""The figures of an Optuna study: the project's own trials figure, Optuna's matplotlib
plots (optimisation history, slices over every searched parameter), the Pareto front of a
two-objective study and the parameters' importances as Optuna computes them.

Optuna 2.10's slice plot draws a log-searched integer (depth, tag(log, int(...))) on a
linear axis and colours by trial number with fractional colour-bar ticks: `slice_figure`
sets each panel's axis from the searched distribution. Its Pareto-front plot is titled
"Pareto-front Plot", spans 0-1 in accuracy and +-0.04 around an all-zero objective, and
draws diverged trials (scored 0 on every objective) like any other: `pareto_figure` draws
the front from the trials table instead.

Optuna 2.10's own importance plot calls matplotlib.cm.get_cmap, which matplotlib 3.9
removed, so the importances (optuna.importance, computed once by optuna_study) are drawn
here as the same horizontal bars.

Optuna 2.10 marks its matplotlib plots experimental (an ExperimentalWarning each) and
switches matplotlib's global style to ggplot; both stay inside `_optuna_plot`, so the other
figures of a report look as they always did.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, MaxNLocator, NullLocator

from analysis.optuna_report import NAMES
from analysis.optuna_study import LOG_SCALE, load_study
from highway_study import record

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
                                              after=_slice_axes, **plot)
    if len(columns) == 2:
        out["optuna_pareto"] = lambda: pareto_figure(
            trials, name, study_description(load_study(storage, name)))
    return out


def _later(storage, name, plot, **kwargs):
    return lambda: _optuna_plot(plot, load_study(storage, name), **kwargs)


def _optuna_plot(plot, study, after=None, **kwargs) -> plt.Figure:
    """One of Optuna's matplotlib plots as a figure, its warning and style kept local;
    `after(fig, study)` amends it inside the same style."""
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore", ExperimentalWarning)
        axes = np.atleast_1d(plot(study, **kwargs))
        fig = axes.ravel()[0].figure
        if len(axes.ravel()) > 1:  # slices: one panel per parameter, side by side
            fig.set_size_inches(4.2 * len(axes.ravel()), 4.2)
        if after is not None:
            after(fig, study)
    return fig


def slice_figure(study, **kwargs) -> plt.Figure:
    """Optuna's slice plot (plot_slice's arguments), each parameter's axis as searched."""
    from optuna.visualization import matplotlib as vis

    return _optuna_plot(vis.plot_slice, study, after=_slice_axes, **kwargs)


def _slice_axes(fig, study) -> None:
    """A slice plot's panels as their parameters were searched: a log axis for a parameter
    searched on a log scale (Optuna 2.10 gives one to floats only, so depth searched as
    tag(log, int(...)) was linear), integer ticks for an integer parameter, labelled with
    plain numbers; the colour bar (trial number) ticked at whole trials."""
    for ax in fig.axes:
        param = ax.get_xlabel()
        found = searched(study, param)
        if found is None:
            continue
        values, log, integer = found
        ax.set_xlabel(AXIS_LABELS.get(param, param))
        if log and min(values) > 0:
            ax.set_xscale("log")
            low, high = np.log10(min(values)), np.log10(max(values))
            pad = 0.05 * (high - low) or 0.1
            ax.set_xlim(10 ** (low - pad), 10 ** (high + pad))
            if integer:  # 1 2 5 10 20 50 over a decade or so, 1 3 10 30 over two
                subs = (1.0, 2.0, 5.0) if high - low <= 1.5 else (
                    (1.0, 3.0) if high - low <= 2.5 else (1.0,))
                ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                ax.xaxis.set_minor_locator(NullLocator())
        elif integer:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    title = f"Slices of study {study.study_name!r}"  # was Optuna's "Slice Plot"
    if fig._suptitle is not None:
        fig.suptitle(title)
    elif fig.axes:
        fig.axes[0].set_title(title)
    for collection in (c for ax in fig.axes for c in ax.collections):
        bar = getattr(collection, "colorbar", None)
        if bar is not None:
            bar.locator = MaxNLocator(integer=True)
            bar.update_ticks()
            bar.set_label("trial number")


def searched(study, param: str):
    """(the finished trials' values, searched on a log scale?, an integer?) of a parameter,
    from its distribution in the study; None for a name the study did not search."""
    import optuna

    values, dists = [], []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if param in trial.params:
            values.append(trial.params[param])
            dists.append(trial.distributions[param])
    if not dists or not all(isinstance(v, (int, float)) for v in values):
        return None
    kinds = {type(d).__name__ for d in dists}
    log = any(getattr(d, "log", False) for d in dists) or bool(
        kinds & {"LogUniformDistribution", "IntLogUniformDistribution"})
    integer = kinds <= {"IntUniformDistribution", "IntLogUniformDistribution",
                        "IntDistribution"}
    return values, log, integer


def scored_zero(trials: pd.DataFrame) -> pd.Series:
    """The trials that stand for diverged or failed runs: the search scores such a run 0.0
    on every objective (record.objective), and no trained net reaches an accuracy of
    exactly 0, so a trial with an accuracy objective at 0 and every other at 0 is one.
    All false for a study without an accuracy objective (0 may be a real value there)."""
    columns, labels = trials.attrs["objectives"], trials.attrs["labels"]
    if trials.empty or not any(str(label).endswith("accuracy") for label in labels):
        return pd.Series(False, index=trials.index)
    return (trials[columns] == 0).all(axis=1)


def objective_scale(label: str) -> tuple[float, str]:
    """(factor, axis label) of an objective: accuracies in percent, as the report has them."""
    name = NAMES.get(label, label)
    return (100.0, f"{name} (%)") if str(label).endswith("accuracy") else (1.0, name)


def pareto_figure(trials: pd.DataFrame, name: str, description: str = "") -> plt.Figure:
    """The first two objectives of every finished trial, the Pareto-optimal ones in red and
    joined; axes fitted to the trials drawn. Trials of diverged or failed runs (scored 0 on
    every objective, see scored_zero) are left out and counted in the legend."""
    (x, y), (x_label, y_label) = trials.attrs["objectives"][:2], trials.attrs["labels"][:2]
    (x_factor, x_name), (y_factor, y_name) = objective_scale(x_label), objective_scale(y_label)
    failed = scored_zero(trials)
    drawn = trials[~failed]
    pareto = drawn["pareto_optimal"].astype(bool) if "pareto_optimal" in drawn else \
        pd.Series(False, index=drawn.index)
    fig, ax = plt.subplots(figsize=(6.8, 4.8))
    others = drawn[~pareto]
    ax.scatter(x_factor * others[x], y_factor * others[y], s=40, color="tab:blue",
               edgecolors="white", linewidths=0.5, label="trial", zorder=2)
    front = drawn[pareto].sort_values(x)
    if len(front):
        ax.plot(x_factor * front[x], y_factor * front[y], color="crimson", lw=1, ls="--",
                zorder=1)
        ax.scatter(x_factor * front[x], y_factor * front[y], s=60, color="crimson",
                   edgecolors="white", linewidths=0.5, label="Pareto-optimal", zorder=3)
    if failed.any():
        count = int(failed.sum())
        ax.scatter([], [], marker="x", color="0.5",
                   label=f"{count} diverged or failed trial{'s' if count != 1 else ''} "
                         "(scored 0): not drawn")
    fit_axis(ax, "x", x_factor * drawn[x])
    fit_axis(ax, "y", y_factor * drawn[y])
    ax.set(xlabel=x_name, ylabel=y_name)
    head = f"Pareto front of study {name!r}"
    ax.set_title(head + (f"\n{description}" if description else ""), fontsize=11)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def fit_axis(ax, axis: str, values) -> None:
    """Limits fitted to `values` with a 5% margin; whole-number values get integer ticks and
    at least half a unit of margin (an all-zero axis spans -0.5 to 1.5, ticked 0 and 1)."""
    values = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
    if values.empty:
        return
    low, high = float(values.min()), float(values.max())
    integer = bool(np.allclose(values, np.round(values)))
    if integer:
        margin = max(0.5, 0.05 * (high - low))
        limits = (low - margin, high + margin + (1.0 if high == low else 0.0))
    else:
        margin = 0.05 * (high - low) or max(0.01 * abs(high), 0.5)
        limits = (low - margin, high + margin)
    target = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xlim if axis == "x" else ax.set_ylim)(*limits)
    if integer:
        ticks = MaxNLocator(integer=True).tick_values(*limits)
        target.set_major_locator(FixedLocator([t for t in ticks
                                               if limits[0] <= t <= limits[1]]))


def study_description(study) -> str:
    """What a study fixed, for a title: model, data, depth and setup from the config the
    search recorded (runtime.study_guard), the depth from its name ('..._depth100') where
    it recorded none; '' when nothing is known."""
    fixed = study.user_attrs.get(record.STUDY_CONFIG_ATTR) or {}
    model, data, depth = fixed.get("model.name"), fixed.get("data.name"), fixed.get("depth")
    if depth is None:
        found = re.search(r"depth(\d+)", study.study_name)
        depth = int(found.group(1)) if found else None
    setup = setup_name(fixed)
    parts = [str(model) if model else None, str(data) if data else None,
             f"depth {depth}" if depth is not None else None,
             f"setup={setup}" if setup else None]
    return ", ".join(p for p in parts if p)


def _setup_files() -> list:
    """conf/setup/*.yaml, as the package carries them (highway_study.conf, installed or
    editable), else beside this folder; [] where neither is found."""
    import importlib.resources

    try:
        folder = importlib.resources.files("highway_study.conf") / "setup"
        if folder.is_dir():
            return sorted((f for f in folder.iterdir() if f.name.endswith(".yaml")),
                          key=lambda f: f.name)
    except (ModuleNotFoundError, TypeError, OSError):
        pass
    folder = Path(__file__).resolve().parents[1] / "conf" / "setup"
    return sorted(folder.glob("*.yaml")) if folder.is_dir() else []


def setup_name(fixed: dict) -> str | None:
    """The setup (conf/setup/<name>.yaml) whose every value the fixed config holds, where
    exactly one does; None when none or several do, or the config holds too few of them
    (fewer than 2: the search may have searched the others)."""
    import yaml

    if not fixed:
        return None
    found = []
    for path in _setup_files():
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        values = record.flatten_config({k: v for k, v in values.items() if k != "defaults"})
        shared = [key for key in values if key in fixed]
        if len(shared) >= 2 and all(_same(fixed[key], values[key]) for key in shared):
            found.append(path.name.removesuffix(".yaml"))
    return found[0] if len(found) == 1 else None


def _same(a, b) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


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
