"""report.md: the study's four questions answered from the runs at hand, figure beside each.

Every number is a mean over seeds (± sd when there are several). A question whose runs are
missing says what is missing and which command would produce the runs.
"""

from __future__ import annotations

import math

import pandas as pd

from analysis import tables
from analysis.collect import KEY_COLUMNS
from analysis.markdown import figure_link, table
from analysis.select import data_sets, data_sets_warning, pooled, pooled_warning, select
from analysis.study import shortcuts
from analysis.tables import number, percent
from highway_study import catalog, convergence

COMMANDS = {
    "baselines": ("HIGHWAY_STUDY_DATA=/path/to/data python -m highway_study "
                  "experiment=blog_baselines"),
    "depth_bias": ("HIGHWAY_STUDY_DATA=/path/to/data python -m highway_study "
                   "experiment=blog_depth_bias"),
    "lesion": ("HIGHWAY_STUDY_DATA=/path/to/data python -m highway_study -m data=mnist "
               "model=highway_fc depth=20,50 carry_bias=-1,-3 lesion_every=1"),
}


def write_report(collection, figures: dict, out_dir, optuna=None) -> str:
    """Write out_dir/report.md and return its text. `figures`: name -> relative path."""
    sets = data_sets(collection.runs)
    sections = [_header(collection), shortcuts.section(collection.runs, out_dir)]
    if len(sets) > 1:  # one set of tables per data set, never a digits net beside a tent net
        for data in sets:
            part = select(collection, [("data", data)])
            sections.append(f"## Data set {data}\n\n{len(part.runs)} runs with data={data}; "
                            "the figures linked below draw every data set's runs together.")
            sections += [_demoted(text) for text in _questions(part, figures)]
    else:
        sections += _questions(collection, figures)
    sections.append(_curves(figures))
    if optuna is not None:
        sections.append(optuna_section(*optuna, figures))
    text = "\n\n".join(s for s in sections if s) + "\n"
    (out_dir / "report.md").write_text(text, encoding="utf-8")
    return text


def _questions(c, figures) -> list[str]:
    return [_question_1(c, figures), _question_2(c, figures), _question_3(c, figures),
            _question_4(c, figures), _step_resolution(c, figures)]


def _demoted(text: str) -> str:
    """A section one heading level down (## -> ###), to sit under its data set's heading."""
    return "\n".join("#" + line if line.startswith("##") else line
                     for line in text.split("\n"))


def _header(c) -> str:
    runs = c.runs
    counts = runs["status"].value_counts()
    status = ", ".join(f"{n} {s}" for s, n in counts.items())
    lines = [
        "# Highway study report",
        "",
        f"{len(runs)} runs ({status}); "
        f"models: {', '.join(sorted(runs['model'].dropna().unique()))}; "
        f"data: {', '.join(sorted(runs['data'].dropna().astype(str).unique()))}; "
        f"runs per cell (model, depth, carry_bias): {_seeds(runs)}.",
        f"Convergence threshold: validation accuracy ≥ {100 * c.threshold:g}%. "
        f"Effective-depth gate threshold: mean transform-gate activity T > {c.gate_threshold:g}.",
        f"Config keys that vary across runs: {', '.join(_varying(c)) or 'none'}. "
        "Every number is the mean over seeds (± sd when there are several); "
        "the full table is `runs.csv`.",
    ]
    if c.selection:
        lines.append(f"Only runs with {' and '.join(c.selection)} (`--where`).")
    for warning in (data_sets_warning(c.runs), pooled_warning(pooled(c))):
        if warning:
            lines += ["", f"**Warning:** {warning}"]
    if c.skipped:
        lines += ["", f"Skipped {len(c.skipped)} folders:"]
        lines += [f"- `{path}`: {why}" for path, why in c.skipped]
    return "\n".join(lines)


def _question_1(c, figures) -> str:
    head = "## 1. Do highway layers train where plain layers of the same depth fail?"
    # carry_bias means nothing to gateless nets: pool their runs over it.
    runs = c.runs.assign(carry_bias=c.runs["carry_bias"].where(tables.is_gated(c.runs["model"])))
    by_family = {family: tables.cells(tables.fully_connected(runs, family), "test_accuracy")
                 for family in catalog.FAMILIES}
    plain, highway = by_family["plain"], by_family["highway"]
    if plain.empty or highway.empty:
        found = ", ".join(sorted(c.runs["model"].dropna().unique()))
        return _missing(head, f"this needs plain_fc and highway_fc runs (found: {found})",
                        COMMANDS["baselines"])
    best = highway.sort_values("mean", ascending=False).drop_duplicates("depth")
    by_family["highway"] = best
    shown = [f for f in catalog.FAMILIES if f in ("plain", "highway") or not by_family[f].empty]
    titles = {"highway": "highway (best carry_bias)"}
    rows = []
    depths = sorted(set().union(*(set(by_family[f]["depth"]) for f in shown)))
    for depth in depths:
        texts = []
        for family in shown:
            cell = by_family[family][by_family[family]["depth"] == depth]
            text = _cell(cell)
            if family == "highway" and len(cell):
                text += f" (carry_bias {cell['carry_bias'].iloc[0]:g})"
            texts.append(text)
        rows.append([depth, *texts])
    shallow = by_family["shallow"]
    deep_p, deep_h = plain.loc[plain["depth"].idxmax()], best.loc[best["depth"].idxmax()]
    answer = (
        f"Deepest plain net (depth {deep_p['depth']}): {_cell(deep_p)} test accuracy; "
        f"deepest highway net (depth {deep_h['depth']}, carry_bias {deep_h['carry_bias']:g}): "
        f"{_cell(deep_h)}."
    )
    trained_p = _deepest_trained(plain, c.threshold)
    trained_h = _deepest_trained(highway, c.threshold)
    answer += (f" {_reach('Plain', trained_p, c.threshold)}"
               f" {_reach('Highway', trained_h, c.threshold)}")
    if not shallow.empty:
        answer += f" The shallow net reaches {_cell(shallow.iloc[0])}."
    header = ["depth", *(titles.get(f, f) for f in shown)]
    return "\n".join([head, "", answer, "", table(header, rows),
                      figure_link(figures, "accuracy_vs_depth", "Figure 3"),
                      figure_link(figures, "accuracy_heatmap", "Figure 1")])


def _question_2(c, figures) -> str:
    head = "## 2. How deep does it still converge?"
    highway = _highway(c.runs)
    if highway.empty:
        return _missing(head, "no highway_fc runs", COMMANDS["depth_bias"])
    value, unit, digits = _speed(highway)
    cells = tables.cells(highway, value)
    header = ["carry_bias", "depths tried", "largest depth reaching the threshold (all seeds)",
              f"{unit} to threshold there"]
    rows = []
    for bias, group in cells.groupby("carry_bias"):
        ok = group[(group["reached"] == group["n"]) & (group["n"] > 0)]
        tried = ", ".join(str(d) for d in group["depth"])
        if ok.empty:
            rows.append([f"{bias:g}", tried, "none", "–"])
            continue
        top = ok.loc[ok["depth"].idxmax()]
        limit = " (deepest tried)" if top["depth"] == group["depth"].max() else ""
        rows.append([f"{bias:g}", tried, f"{top['depth']}{limit}",
                     number(top['mean'], top['sd'], top['reached'], digits)])
    if unit == "steps":
        note = (f"A cell reaches the threshold when every seed's validation accuracy reaches "
                f"{100 * c.threshold:g}% at a point of its step-resolution curve "
                f"(recomputed from curve.jsonl: {_eval_every(highway)}).")
        figure = figure_link(figures, "steps_heatmap", "Steps to threshold")
    else:
        note = (f"A cell reaches the threshold when every seed's validation accuracy reaches "
                f"{100 * c.threshold:g}% within its epochs (recomputed from metrics.jsonl).")
        figure = figure_link(figures, "epochs_heatmap", "Figure 2")
    return "\n".join([head, "", note, "", table(header, rows), figure])


def _question_3(c, figures) -> str:
    head = "## 3. What do very negative or very positive carry biases do?"
    highway = _highway(c.runs)
    biases = sorted(highway["carry_bias"].dropna().unique())
    if len(biases) < 2:
        return _missing(head, "this needs highway_fc runs with at least two carry biases",
                        COMMANDS["depth_bias"])
    value, unit, digits = _speed(highway)
    stepwise = unit == "steps"
    speeds = tables.cells(highway, value)
    header = ["carry_bias", "cells", "never reach threshold", "diverged/failed",
              f"mean {unit} to threshold (runs that reach it)", "mean test accuracy",
              *(["stalled runs"] if stepwise else [])]
    rows = []
    stats = {}
    for bias in biases:
        e = speeds[speeds["carry_bias"] == bias]
        runs = highway[highway["carry_bias"] == bias]
        never = int(((e["reached"] == 0) & (e["completed"] > 0)).sum())
        lost = int(((e["completed"] == 0)).sum())
        speed = runs[value].mean()
        stats[bias] = (len(e), never, lost, speed)
        rows.append([f"{bias:g}", len(e), never, lost, number(speed, digits=digits),
                     percent(runs['test_accuracy'].mean()),
                     *([_stalled(runs)] if stepwise else [])])
    low, high = biases[0], biases[-1]
    answer = (f"Most negative carry_bias {low:g}: {stats[low][1]} of {stats[low][0]} cells never "
              f"reach the threshold, {stats[low][2]} diverge or fail. Most positive "
              f"{high:g}: {stats[high][1]} of {stats[high][0]} never reach it, "
              f"{stats[high][2]} diverge or fail.")
    fastest = min((s[3], b) for b, s in stats.items() if not math.isnan(s[3])) \
        if any(not math.isnan(s[3]) for s in stats.values()) else None
    if fastest:
        answer += (f" Fastest on average: carry_bias {fastest[1]:g} "
                   f"({fastest[0]:.{digits}f} {unit}).")
    if stepwise:
        answer += (f" A run is *stalled* when, from step {convergence.STALL_AFTER} on, its "
                   f"validation accuracy is never more than "
                   f"{100 * convergence.STALL_MARGIN:g} points above chance (runs shorter "
                   f"than that get no verdict).")
        figure = figure_link(figures, "steps_heatmap", "Steps to threshold")
    else:
        figure = figure_link(figures, "epochs_heatmap", "Figure 2")
    return "\n".join([head, "", answer, "", table(header, rows), figure])


def _question_4(c, figures) -> str:
    head = "## 4. How many layers does a deep net actually use?"
    highway = _highway(c.runs)
    highway = highway[highway["effective_depth"].notna()]
    if highway.empty:
        return _missing(head, "no highway_fc runs with gate activity", COMMANDS["depth_bias"])
    grouped = highway.groupby(["depth", "carry_bias"])["effective_depth"]
    used = grouped.agg(["mean", "std", "size"]).reset_index()
    biases = sorted(used["carry_bias"].unique())
    rows = []
    for depth, group in used.groupby("depth"):
        cells = {b: number(m, s, n) for b, m, s, n in
                 zip(group["carry_bias"], group["mean"], group["std"], group["size"])}
        rows.append([depth, *(cells.get(b, "–") for b in biases)])
    initial = ", ".join(f"{1 / (1 + math.exp(-b)):.2f} (carry_bias {b:g})" for b in biases)
    note = (f"Effective depth = layers whose mean transform-gate activity T at the end of "
            f"training exceeds {c.gate_threshold:g}. At initialisation T is about "
            f"sigmoid(carry_bias): {initial}.")
    header = ["depth", *(f"carry_bias {b:g}" for b in biases)]
    return "\n".join([head, "", note, "", table(header, rows),
                      figure_link(figures, "effective_depth", "Figure 5b"),
                      figure_link(figures, "gate_activity", "Figure 5a"), "",
                      _gate_dynamics(c, figures), _lesions(c, figures)])


def _gate_dynamics(c, figures) -> str:
    """How far the gates moved from where they started, per cell, and one run's layers."""
    highway = _highway(c.runs)
    highway = highway[highway["gate_shift"].notna()]
    if highway.empty:
        return ""
    lines = ["### Gate dynamics: did the gates move?", "",
             "Gate shift = mean over layers of |T at the last point - T at step 0| "
             "(from curve.jsonl)."]
    for (depth, bias), group in highway.groupby(["depth", "carry_bias"]):
        start = 1 / (1 + math.exp(-bias))
        lines.append(f"- depth {depth}, carry_bias {bias:g} (T starts near {start:.2g}): "
                     f"gate shift {group['gate_shift'].mean():.2g}"
                     + (f" (mean of {len(group)} runs)" if len(group) > 1 else "") + ".")
    lines += ["", figure_link(figures, "gate_shift_heatmap", "Gate shift per cell")]
    if c.gate_run is not None and "gate_dynamics" in figures:
        lines += ["", f"Every layer's mean gate over training for run `{c.gate_run}` "
                      "(choose another with `--gate-run`):", "",
                  figure_link(figures, "gate_dynamics", "Gate dynamics")]
    return "\n".join(lines) + "\n"


def _lesions(c, figures) -> str:
    head = "### Lesioning: which layers matter?"
    lesions = tables.lesion_table(c)
    lesions = lesions[tables.is_gated(lesions["model"])]
    if lesions.empty:
        return _missing(head, "no lesion measurements (train with lesion_every=k)",
                        COMMANDS["lesion"])
    depth = int(lesions["depth"].max())
    lines = [head, "",
             f"Accuracy drop = final validation accuracy minus validation accuracy with one "
             f"layer's transform gate forced shut (T = 0), for the deepest lesioned nets "
             f"(depth {depth})."]
    by_layer = lesions[lesions["depth"] == depth].groupby(["carry_bias", "layer"])
    means = by_layer[["accuracy_drop", "gate_activity"]].mean().reset_index()
    for bias, group in means.groupby("carry_bias"):
        top = group.loc[group["accuracy_drop"].idxmax()]
        big = int((group["accuracy_drop"] > 0.01).sum())
        lines.append(f"- carry_bias {bias:g}: largest drop {_points(top['accuracy_drop'])} "
                     f"points at layer {int(top['layer'])} (its T = {top['gate_activity']:.2f}); "
                     f"{big} of {len(group)} lesioned layers cost more than 1 point.")
    return "\n".join(lines + ["", figure_link(figures, "lesion", "Figure 6")])


def _step_resolution(c, figures) -> str:
    """Per cell: steps to threshold, curve area, stalled runs, accuracy after each budget."""
    runs = c.runs[c.runs["curve_last_step"].notna()]
    if runs.empty:
        return ""
    head = "## Convergence at step resolution"
    budgets = [b for b in c.budgets if f"accuracy_after_{b}" in runs]
    steps = tables.cells(runs, "curve_steps_to_threshold")
    area = tables.cells(runs, "curve_area").set_index(tables.CELL)
    after = {b: tables.cells(runs, f"accuracy_after_{b}").set_index(tables.CELL)
             for b in budgets}
    header = ["model", "depth", "carry_bias", f"steps to {100 * c.threshold:g}%", "curve area",
              "stalled", *(f"after {b:,} steps" for b in budgets)]
    rows = []
    for _, cell in steps.iterrows():
        key = tuple(cell[k] for k in tables.CELL)
        members = runs[(runs["model"] == cell["model"]) & (runs["depth"] == cell["depth"])
                       & (runs["carry_bias"] == cell["carry_bias"])]
        reach = number(cell["mean"], cell["sd"], cell["reached"], 0)
        if cell["reached"] < cell["n"]:
            reach = "never" if cell["reached"] == 0 else f"{reach} ({cell['reached']}/{cell['n']})"
        texts = [percent(after[b].loc[key, "mean"], after[b].loc[key, "sd"],
                         after[b].loc[key, "reached"]) for b in budgets]
        spread = number(area.loc[key, "mean"], area.loc[key, "sd"], area.loc[key, "reached"], 2)
        rows.append([cell['model'], cell['depth'], f"{cell['carry_bias']:g}", reach, spread,
                     _stalled(members), *texts])
    note = (f"Every number comes from the runs' step-resolution curves ({_eval_every(runs)}). "
            "Curve area = area under validation accuracy over steps divided by the steps "
            "spanned (1 = perfect from the first point). Stalled: never more than "
            f"{100 * convergence.STALL_MARGIN:g} points above chance from step "
            f"{convergence.STALL_AFTER} on (– for runs shorter than that). \"After N "
            "steps\" is each run's last point at or before step N (runs.csv's "
            "step_read_after_N says which step).")
    return "\n".join([head, "", note, "", table(header, rows),
                      figure_link(figures, "steps_heatmap", "Steps to threshold"),
                      figure_link(figures, "budget_heatmaps", "Accuracy after step budgets"),
                      figure_link(figures, "step_curves", "Learning curves over steps")])


def _speed(runs) -> tuple[str, str, int]:
    """(column, unit, digits) measuring how fast runs converge: steps when they have
    step-resolution curves, else epochs (records written before curve.jsonl)."""
    if runs["curve_last_step"].notna().any():
        return "curve_steps_to_threshold", "steps", 0
    return "epochs_to_threshold", "epochs", 1


def _stalled(runs) -> str:
    """'1/3' stalled runs among those with a verdict, or '–' when none has one."""
    verdicts = runs["stalled"].dropna()
    if verdicts.empty:
        return "–"
    return f"{int(verdicts.astype(bool).sum())}/{len(verdicts)}"


def _eval_every(runs) -> str:
    """How the curves were recorded: 'a point every 100 steps' (or the values found)."""
    every = sorted({int(e) for e in runs["curve_eval_every"].dropna()})
    if not every:
        return "a point every eval_every steps"
    return "a point every " + " or ".join(str(e) for e in every) + " steps"


def _points(drop: float) -> str:
    """An accuracy difference in percentage points, without a '-0.0'."""
    text = f"{100 * drop:.1f}"
    return "0.0" if text == "-0.0" else text


def _curves(figures) -> str:
    if "learning_curves" not in figures:
        return ""
    return "## Learning curves\n\n" + figure_link(figures, "learning_curves", "Figure 4")


def optuna_section(name, trials, figures) -> str:
    """The Optuna study's section (analysis.optuna_report)."""
    from analysis.optuna_report import section

    return section(name, trials, figures).rstrip("\n")


def _missing(head, what, command) -> str:
    return f"{head}\n\nNot answered: {what}. Produce the runs with:\n\n    {command}\n"


def _cell(cell) -> str:
    """Mean ± sd of a cell's completed runs, or what happened to them."""
    if isinstance(cell, pd.DataFrame):
        if cell.empty:
            return "–"
        cell = cell.iloc[0]
    mark = tables.cell_mark(cell)
    if mark:
        return {"div": "diverged", "fail": "failed", "int": "interrupted"}[mark] + \
            f" ({cell['n']}/{cell['n']})"
    return percent(cell["mean"], cell["sd"], cell["completed"])


def _reach(kind: str, depth, threshold) -> str:
    if depth is None:
        return f"No {kind.lower()} net reaches {100 * threshold:g}% mean test accuracy."
    return f"{kind} nets reach {100 * threshold:g}% mean test accuracy up to depth {depth}."


def _deepest_trained(cells, threshold) -> int | None:
    ok = cells[cells["mean"] >= threshold]
    return int(ok["depth"].max()) if not ok.empty else None


def _highway(runs) -> pd.DataFrame:
    """The fully connected highway runs, which questions 2-4 are about."""
    return tables.fully_connected(runs, "highway")


def _varying(c) -> list[str]:
    return [k for k in KEY_COLUMNS if c.runs[k].nunique() > 1] + c.swept


def _seeds(runs) -> str:
    sizes = runs.groupby(tables.CELL, dropna=False).size()
    low, high = int(sizes.min()), int(sizes.max())
    return str(low) if low == high else f"{low}-{high}"
