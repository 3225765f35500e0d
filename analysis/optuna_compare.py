"""Several Optuna studies side by side: the best setting each search found, per depth.

The per-depth searches (hparams_search=bias_lr_optuna at depth 20, 100, 1000, ...) each
answer for one depth; the question they exist for spans them: does the carry bias the
search prefers become more negative with depth, as the grid's rule has it? One search's
best trial is a noisy answer when many trials score alike (at depth 1000 every carry bias
from -20 to -10 reaches the same accuracy), so the table also gives the carry biases of
every trial within NEAR points of the best.

A study's depth and model are read from the fixed config its search recorded
(runtime.study_guard); a study made without one has no depth in the table.
"""

from __future__ import annotations

import fnmatch
import itertools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis.collect import AnalysisError
from analysis.optuna_figures import AXIS_LABELS, objective_scale, scored_zero
from analysis.optuna_report import NAMES, number, show
from analysis.optuna_study import best_index
from highway_study.record import STUDY_CONFIG_ATTR

NEAR = 0.005  # "near the best": within half a point of accuracy (or 0.005 of the value)
FIGURE = "optuna_compared"


def matching_studies(names: list[str], patterns: list[str], storage: str) -> list[str]:
    """Every study named by a name or shell pattern (fnmatch), in the storage's order; a
    pattern that names none ends in one sentence that lists the studies there are."""
    picked = []
    for pattern in patterns:
        found = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not found:
            raise AnalysisError(
                f"--study {pattern!r} names no study in {storage!r}: use one of "
                f"{', '.join(names) or '(none)'} (shell patterns such as 'bias_lr_*' work).")
        picked += [n for n in found if n not in picked]
    return picked


def study_setting(study) -> dict:
    """What the search fixed that tells studies apart: model and depth (None if unknown)."""
    fixed = study.user_attrs.get(STUDY_CONFIG_ATTR) or {}
    depth = fixed.get("depth")
    return {"model": fixed.get("model.name"), "depth": int(depth) if depth is not None else None}


def comparison(studies: dict[str, tuple[dict, pd.DataFrame]]) -> pd.DataFrame:
    """One row per study: its setting, finished trials, the best trial of its first
    objective and the carry biases of the trials near that best."""
    rows = []
    for name, (setting, trials) in studies.items():
        row = {"study": name, **setting, "trials": len(trials)}
        if not trials.empty:
            column = trials.attrs["objectives"][0]
            best = trials.loc[best_index(trials)]
            near = trials[(trials[column] - best[column]).abs() <= NEAR]
            row.update(objective=trials.attrs["labels"][0], best_value=best[column],
                       best_trial=int(best["number"]), near_best=len(near))
            for param in trials.attrs["params"]:
                row[f"best_{param}"] = best[param]
            if "carry_bias" in trials:
                row["near_carry_bias_min"] = near["carry_bias"].min()
                row["near_carry_bias_max"] = near["carry_bias"].max()
        rows.append(row)
    table = pd.DataFrame(rows)
    order = [c for c in ("model", "depth") if table[c].notna().any()]
    return table.sort_values(order, kind="stable").reset_index(drop=True) if order else table


def section(table: pd.DataFrame, figures: dict, links: dict[str, str]) -> str:
    """The report: the table, the answer on the carry bias over depth, the figure and a link
    to each study's own report."""
    from analysis.markdown import figure_link, table as markdown_table

    params = [c.removeprefix("best_") for c in table if c.startswith("best_")
              and c not in ("best_value", "best_trial")]
    header = ["study", "model", "depth", "trials", "best value",
              *[NAMES.get(p, p) for p in params], "carry bias near the best"]
    rows = []
    for _, row in table.iterrows():
        value = (f"{show(row['objective'], row['best_value'])} (trial {row['best_trial']})"
                 if pd.notna(row.get("best_value")) else "no finished trial")
        near = (f"{number(row['near_carry_bias_min'])} to {number(row['near_carry_bias_max'])}"
                f" ({row['near_best']} trial{'s' if row['near_best'] != 1 else ''})"
                if pd.notna(row.get("near_carry_bias_min")) else "–")
        rows.append([f"[`{row['study']}`]({links[row['study']]})", str(row["model"] or "–"),
                     number(row["depth"]) if pd.notna(row["depth"]) else "–",
                     str(row["trials"]), value,
                     *[number(row[f"best_{p}"]) if pd.notna(row.get(f"best_{p}")) else "–"
                       for p in params], near])
    lines = ["## Optuna studies compared", "",
             f"{len(table)} studies; for each, its best trial by its first objective, and the "
             f"range of carry bias over the trials within {NEAR * 100:g} points (accuracy) or "
             f"{NEAR:g} (other values) of that best, a steadier answer than one trial when "
             "many trials score alike. Each study's own report is linked.", "",
             markdown_table(header, rows)]
    answer = depth_answer(table)
    if answer:
        lines += [answer, ""]
    link = figure_link(figures, FIGURE, "Every trial's carry bias and learning rate per depth")
    if link:
        lines += [link, ""]
    return "\n".join(lines).rstrip() + "\n"


def depth_answer(table: pd.DataFrame) -> str | None:
    """Whether the best carry bias becomes more negative with depth, per model, when the
    studies searched the carry bias at two or more depths. The biases are compared as
    printed (number(): 3 significant digits), so two that print alike are called equal,
    never "less negative"."""
    if "best_carry_bias" not in table:
        return None
    parts = []
    for model, rows in table.dropna(subset=["depth", "best_carry_bias"]).groupby(
            "model", dropna=False, sort=False):
        rows = rows.sort_values("depth")
        if rows["depth"].nunique() < 2 or len(rows) != rows["depth"].nunique():
            continue
        shown = [number(b) for b in rows["best_carry_bias"]]
        depths = [int(d) for d in rows["depth"]]
        listed = ", ".join(f"depth {d}: {b}" for d, b in zip(depths, shown))
        who = f"{model}: " if model else ""
        parts.append(f"{who}the best carry bias found is {listed}: "
                     f"{trend(depths, [float(b) for b in shown])}.")
    if not parts:
        return None
    return ("**Does the best carry bias follow depth?** " + " ".join(parts) + " Read it "
            "beside the ranges near the best: where they overlap, the searches do not tell "
            "the depths apart.")


def trend(depths: list[int], biases: list[float]) -> str:
    """How the (printed, rounded) best carry bias moves from each depth to the next deeper."""
    steps = np.diff(biases)
    equal = [f"{a} and {b}" for a, b, step in zip(depths, depths[1:], steps) if step == 0]
    same = (f"equal at depths {', '.join(equal)} (to the precision shown)" if equal else "")
    if np.all(steps == 0):
        return "equal at every depth (to the precision shown)"
    if np.all(steps < 0):
        return "more negative at every deeper depth, as the grid's rule has it"
    if np.all(steps > 0):
        return "less negative at every deeper depth, against the grid's rule"
    if np.all(steps <= 0):
        return f"never less negative with depth, but {same}"
    if np.all(steps >= 0):
        return f"never more negative with depth, against the grid's rule; {same}"
    return "not monotonic in depth"


def figure(studies: dict[str, tuple[dict, pd.DataFrame]]) -> plt.Figure | None:
    """Every trial's carry bias and learning rate (those searched) at its study's depth,
    coloured by its first objective (accuracies in %, as the report gives them), one marker
    per model; each study's best trial starred. Trials of diverged or failed runs (scored 0,
    see optuna_figures.scored_zero) are grey crosses, named in the legend, outside the
    colour scale. None unless depths are known."""
    points = []
    for name, (setting, trials) in studies.items():
        if setting["depth"] is None or trials.empty:
            continue
        factor, _ = objective_scale(trials.attrs["labels"][0])
        part = trials.assign(depth=setting["depth"], model=setting["model"] or "",
                             value=factor * trials[trials.attrs["objectives"][0]],
                             best=trials.index == best_index(trials),
                             failed=scored_zero(trials))
        points.append(part)
    if not points:
        return None
    frame = pd.concat(points, ignore_index=True)
    ys = [p for p in ("carry_bias", "optimizer.learning_rate") if p in frame]
    if not ys:
        return None
    depths = sorted(frame["depth"].unique())
    position = {d: i for i, d in enumerate(depths)}
    models = list(dict.fromkeys(frame["model"]))
    shift = {m: (i - (len(models) - 1) / 2) * 0.2 for i, m in enumerate(models)}
    fig, axes = plt.subplots(1, len(ys), figsize=(6 * len(ys), 4.6), squeeze=False,
                             layout="constrained")
    markers = dict(zip(models, itertools.cycle("osD^v")))
    scored = frame.loc[~frame["failed"], "value"]
    low, high = (scored.min(), scored.max()) if len(scored) else (0.0, 1.0)
    dots = None
    for ax, y in zip(axes.ravel(), ys):
        for model in models:
            part = frame[(frame["model"] == model) & frame[y].notna()]  # plain nets: no b_T
            if part.empty:
                continue
            x = part["depth"].map(position) + shift[model]
            jitter = np.random.default_rng(0).uniform(-0.06, 0.06, len(part))
            good = ~part["failed"]
            dots = ax.scatter((x + jitter)[good], part.loc[good, y], c=part.loc[good, "value"],
                              cmap="viridis", vmin=low, vmax=high, s=40,
                              marker=markers[model], edgecolors="white", linewidths=0.5,
                              label=(model or None) if len(models) > 1 else None)
            ax.scatter((x + jitter)[~good], part.loc[~good, y], marker="x", s=30,
                       color="0.55", linewidths=1)
            best = part[part["best"]]
            ax.scatter(best["depth"].map(position) + shift[model], best[y], marker="*",
                       s=260, facecolors="none", edgecolors="crimson", linewidths=1.5)
        ax.set_xticks(range(len(depths)), [str(d) for d in depths])
        if y == "optimizer.learning_rate":
            ax.set_yscale("log")
        ax.set(xlabel="depth (layers)", ylabel=AXIS_LABELS.get(y, y),
               title=f"{NAMES.get(y, y)} of every trial (best starred)")
        failed = int((frame["failed"] & frame[y].notna()).sum())
        if failed:
            ax.scatter([], [], marker="x", s=30, color="0.55", linewidths=1,
                       label=f"diverged or failed, scored 0 ({failed} trial"
                             f"{'s' if failed != 1 else ''})")
        if len(models) > 1 or failed:
            ax.legend(loc="best", fontsize=8)
    if dots is not None:
        fig.colorbar(dots, ax=axes.ravel().tolist(), label=studies_label(studies))
    return fig


def studies_label(studies) -> str:
    """The colour bar's label: the studies' first objective (with its unit), else 'value'."""
    labels = {trials.attrs["labels"][0] for _, trials in studies.values() if not trials.empty}
    if len(labels) != 1:
        return "value"
    return objective_scale(next(iter(labels)))[1]
