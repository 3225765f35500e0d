"""The needs-depth section (needs_depth.md, also appended to report.md) and its CSV tables.

Why it appears on its own rather than behind an option: whenever the runs analysed hold
data=tent runs, the section is written, so `python -m analysis` on the three needs-depth
sweeps answers the study's questions without a flag to remember. The MNIST grid it is
compared with comes from `--compare FOLDER [FOLDER ...]` (sweep folders or runs.csv files,
for example the MNIST grid and the MNIST residual nets) and is read as a collection of its
own: given as more FOLDERs, its runs would share cells (model, depth, carry_bias) with the
tent runs and every mean of report.md would mix the two tasks.

A question whose runs are missing says so and names the command that makes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.collect import AnalysisError, collect
from analysis.markdown import figure_link, table, write_section
from analysis.select import pooled, pooled_warning
from analysis.study import needs_depth as nd
from analysis.tables import percent
from highway_study import catalog, record

SECTION_FILE = "needs_depth.md"
FIGURES = {"heatmaps": "needs_depth_heatmaps", "gates": "needs_depth_gates"}
FAMILIES_COMPARED = "needs_depth_families_compared.csv"  # question 2 on the --compare runs


@dataclass
class Study:
    """The tent runs (with layers_used), their final gates, and the grid compared with."""

    runs: pd.DataFrame
    gates: pd.DataFrame
    other: pd.DataFrame | None = None  # the --compare runs (MNIST), or None
    other_name: str | None = None  # what --compare named (its sources, space-separated)
    warning: str | None = None  # the --compare runs pool different settings

    @property
    def highway(self) -> pd.DataFrame:
        return nd.family_runs(self.runs, "highway")


def prepare(collection, compare=None) -> Study | None:
    """The study of the collection's tent runs, or None when there is no collection or it
    holds no tent run (then --compare has nothing to stand beside: refused in one sentence)."""
    runs = nd.task_runs(collection.runs) if collection is not None else None
    if runs is None or runs.empty:
        if compare:
            raise AnalysisError(f"--compare draws its grid beside the data={nd.TASK} grid, "
                                f"and the runs analysed hold no data={nd.TASK} run.")
        return None
    gates = collection.gates[collection.gates["run"].isin(set(runs["run"]))]
    study = Study(nd.with_layers_used(runs, gates), gates)
    if compare:
        sources = [compare] if isinstance(compare, (str, Path)) else list(compare)
        study.other, study.warning = load_others([Path(s) for s in sources])
        study.other_name = " ".join(str(s) for s in sources)
    return study


def load_others(sources: list[Path]) -> tuple[pd.DataFrame, str | None]:
    """(runs, pooled-settings warning or None) of the --compare sources: sweep folders are
    collected together (the runs.csv files read one by one), then all stacked."""
    folders = [s for s in sources if s.suffix != ".csv"]
    parts, warning = [load_other(s)[0] for s in sources if s.suffix == ".csv"], None
    if folders:
        other = collect(folders)
        parts.append(other.runs)
        warning = pooled_warning(pooled(other))
    return pd.concat(parts, ignore_index=True), warning


def load_other(source: Path) -> tuple[pd.DataFrame, str | None]:
    """(runs, pooled-settings warning or None) of a sweep folder, or of a runs.csv that
    the analysis wrote (the committed grid of the first edition, for example)."""
    if source.suffix == ".csv":
        try:
            runs = pd.read_csv(source)
        except (OSError, pd.errors.ParserError, UnicodeDecodeError) as error:
            raise AnalysisError(f"--compare {str(source)!r} is not a readable runs.csv "
                                f"({error}).") from None
        wanted = {"model", "data", "depth", "carry_bias", "status", "test_accuracy", "run"}
        if not wanted <= set(runs.columns):
            raise AnalysisError(f"--compare {str(source)!r} lacks the runs.csv columns "
                                f"{', '.join(sorted(wanted - set(runs.columns)))}.")
        return runs.assign(family=runs["model"].map(catalog.family)), None
    other = collect([source])
    return other.runs, pooled_warning(pooled(other))


def drawers(study: Study) -> dict:
    """Figure name -> a function drawing it, for the figures the runs can fill."""
    from analysis.study import needs_depth_plots

    drawn = {}
    if not study.highway.empty:
        panels = [(f"{nd.TASK} (this study)", study.runs)]
        if _beside(study):
            panels.append((_other_title(study), study.other))
        drawn[FIGURES["heatmaps"]] = lambda: needs_depth_plots.heatmaps(panels)
    profile = nd.gate_profile(study.runs, study.gates)
    if not profile.empty:
        drawn[FIGURES["gates"]] = lambda: needs_depth_plots.gate_profiles(profile)
    return drawn


def write(study: Study, figures: dict, out: Path) -> str:
    """Write needs_depth.md and the needs_depth_*.csv tables into `out`, append the section
    to out/report.md when there is one; return the section."""
    if not study.highway.empty:
        nd.grid(study.runs).to_csv(out / "needs_depth_cells.csv", index=False)
        nd.gate_groups(study.runs, study.gates).to_csv(out / "needs_depth_gates.csv",
                                                       index=False)
    nd.compare(study.runs).to_csv(out / "needs_depth_families.csv", index=False)
    if study.other is not None:
        nd.compare(study.other, nd.data_chance(study.other)).to_csv(out / FAMILIES_COMPARED,
                                                                    index=False)
    return write_section(out, SECTION_FILE, section(study, figures))


def section(study: Study, figures: dict) -> str:
    """The section's markdown: the definitions, then the five questions in order."""
    parts = [_header(study), _cells(study, figures), _families(study), _deep(study),
             _gates(study, figures), _mnist(study, figures)]
    return "\n\n".join(p.rstrip("\n") for p in parts)


def _header(study: Study) -> str:
    counts = study.runs["family"].value_counts()
    found = ", ".join(f"{counts[f]} {f}" for f in catalog.FAMILIES if f in counts)
    lines = [f"## A task that needs depth (data={nd.TASK})", "",
             f"{len(study.runs)} runs on data={nd.TASK} ({found}). A cell (model, depth, carry "
             f"bias) *learns* the task when the mean test accuracy of its seeds is at least "
             f"{100 * nd.LEARNS:g}%, halfway from chance ({100 * nd.TASK_CHANCE:g}%) to "
             f"perfect, and none of its seeds diverged. A layer is *used* when its mean "
             f"transform gate T at the end of training is at least {record.USED_GATE:g} and "
             f"opened in training: at least {record.USED_OPENING:g} times its start, "
             f"sigmoid(carry bias), or {record.USED_HALF:g} (`layers_used` of the run "
             f"record). Numbers are means ± sd over seeds; every "
             f"cell is in `needs_depth_cells.csv`."]
    if study.warning:
        lines += ["", f"**Warning (--compare {study.other_name}):** {study.warning}"]
    return "\n".join(lines)


def _cells(study: Study, figures: dict) -> str:
    head = "### 1. Which depth x carry-bias cells learn the task?"
    if study.highway.empty:
        return _missing(head, f"no highway runs on data={nd.TASK}", nd.COMMANDS["highway"])
    cells = nd.grid(study.runs)
    biases = sorted(cells["carry_bias"].unique())
    rows = []
    for depth, group in cells.groupby("depth"):
        by_bias = {cell["carry_bias"]: _cell(cell) for _, cell in group.iterrows()}
        rows.append([depth, *(by_bias.get(b, "–") for b in biases)])
    learning = cells[cells["learns"] == True]  # noqa: E712
    where = _by_bias(learning)
    unknown = int(cells["learns"].isna().sum())
    answer = (f"{len(learning)} of {len(cells)} cells learn the task"
              + (f" ({where})" if where else "") + "."
              + (f" {unknown} cells have no finished run yet." if unknown else ""))
    if len(learning):
        best = cells.loc[cells["mean"].idxmax()]
        answer += (f" Best: depth {best['depth']}, carry bias {best['carry_bias']:g}, "
                   f"{_percent(best)}.")
    figure = ("The grid is drawn beside the MNIST grid under question 5." if
              _beside(study) else figure_link(figures, FIGURES["heatmaps"], "Tent grid"))
    header = ["depth", *(f"carry bias {b:g}" for b in biases)]
    return "\n".join([head, "", answer, "", "Test accuracy per cell (bold: learns):", "",
                      table(header, rows), figure])


def _families(study: Study) -> str:
    head = "### 2. Residual and plain nets against highway nets of the same depth"
    families = set(study.runs["family"])
    if "highway" not in families:
        return _missing(head, f"no highway runs on data={nd.TASK}", nd.COMMANDS["highway"])
    if not {"residual", "plain"} & families:
        return _missing(head, f"no residual or plain runs on data={nd.TASK}",
                        nd.COMMANDS["baselines"])
    compared, answer = family_table(nd.compare(study.runs))
    lines = [head, "", answer, "", compared, "Bold: the cell learns the task. "
             "Every number is in `needs_depth_families.csv`."]
    if "residual" not in families or "plain" not in families:
        lost = "residual" if "residual" not in families else "plain"
        lines += ["", _missing_line(f"no {lost} runs", nd.COMMANDS["baselines"])]
    return "\n".join(lines)


def family_table(compared: pd.DataFrame, task: str = "it") -> tuple[str, str]:
    """A needs_depth.compare table in Markdown and the sentence that sums it up (also the
    shortcut section of report.md, analysis.study.shortcuts)."""
    header = ["depth", "plain", "residual", "highway, best carry bias",
              f"highway, carry bias {nd.MODERATE_BIAS:g}"]
    rows = []
    for _, row in compared.iterrows():
        best = _cell(_part(row, "highway_best"))
        if not pd.isna(row["highway_best_carry_bias"]):
            best += f" ({row['highway_best_carry_bias']:g})"
        rows.append([row['depth'], _cell(_part(row, 'plain')), _cell(_part(row, 'residual')),
                     best, _cell(_part(row, 'highway_moderate'))])
    names = {"residual": "Residual nets", "highway_best": "highway nets at their best carry "
             "bias", "highway_moderate": f"highway nets at carry bias {nd.MODERATE_BIAS:g}",
             "plain": "plain nets"}
    sentences = [f"{text} learn {task} at {_depths(compared, name)}"
                 for name, text in names.items()]
    answer = "; ".join(sentences) + "."
    both = compared.dropna(subset=["residual_mean", "highway_best_mean"])
    if len(both):
        gaps = ", ".join(f"{_points(r['residual_mean'] - r['highway_best_mean'])} at depth "
                         f"{r['depth']}" for _, r in both.iterrows())
        answer += (f" Residual minus highway (best carry bias), in points of mean test "
                   f"accuracy: {gaps}.")
    return table(header, rows), answer


def _deep(study: Study) -> str:
    depth, bias = nd.DEEP
    head = (f"### 3. Is the {depth}-layer net at carry bias {bias:g} the shallow net in "
            "disguise here too?")
    answer = nd.deep_vs_shallow(study.runs)
    if answer is None:
        return _missing(head, f"no highway runs of depth {depth} at carry bias {bias:g}",
                        nd.COMMANDS["deep"].format(depth=depth, bias=bias))
    deep, shallow, softmax = answer["deep"], answer["shallow"], answer["softmax"]
    used = answer["most_layers_used"]
    layers = ("no gate record" if pd.isna(used) else
              f"{_number(deep.get('layers_used'), deep.get('layers_used_sd'), deep['completed'])}"
              f" of {depth} (at most {int(used)} in any seed)")
    facts = [f"Depth {depth}, carry bias {bias:g}: {_percent(deep)} test accuracy "
             f"({_verdict(deep)}); layers used: {layers}."]
    if shallow is not None:
        facts.append(f"The shallow net (one hidden layer): {_percent(shallow)} "
                     f"({_verdict(shallow)}).")
    if softmax is not None:
        facts.append(f"Softmax regression: {_percent(softmax)} ({_verdict(softmax)}).")
    lines = [head, "", " ".join(facts), ""]
    if shallow is None:
        return "\n".join(lines + [_missing_line("no shallow runs to compare with",
                                                nd.COMMANDS["shallow"])])
    return "\n".join(lines + [f"**{_deep_verdict(answer)}**"])


def _deep_verdict(answer: dict) -> str:
    """Whether the deep net behaves as the MNIST finding predicts (no layer used, and the
    shallow net's verdict), and if not, which half of the prediction fails."""
    deep, shallow, used = answer["deep"], answer["shallow"], answer["most_layers_used"]
    if deep["learns"] is None or pd.isna(deep["learns"]):
        return "Not measured yet: no run of this cell completed."
    if pd.isna(used):
        return "Not measured: its runs recorded no gate activity."
    learns, shallow_learns = _yes(deep["learns"]), _yes(shallow["learns"])
    if answer["prediction"]:
        return ("As on MNIST: it uses none of its layers and does what the shallow net does, "
                "so here too it is the shallow net in disguise.")
    if answer["uses_no_layer"]:
        return ("Not as on MNIST: none of its layers is used (no gate opened), yet it "
                + ("learns where the shallow net fails: gates below that do the work."
                   if learns else "fails where the shallow net learns."))
    if learns:
        return ("Not as on MNIST: it uses its layers and learns the task"
                + ("" if shallow_learns else ", which the shallow net does not")
                + ": the depth is used.")
    if shallow_learns:
        return (f"Not as on MNIST: {int(used)} of its layers open their gates, yet it fails "
                "where the shallow net learns.")
    return (f"Partly as on MNIST: it fails like the shallow net, but up to {int(used)} of its "
            "layers open their gates without making it learn.")


def _gates(study: Study, figures: dict) -> str:
    head = "### 4. Gates of the cells that learn and of those that do not"
    if study.highway.empty:
        return _missing(head, f"no highway runs on data={nd.TASK}", nd.COMMANDS["highway"])
    groups = nd.gate_groups(study.runs, study.gates)
    rows = [[g['group'], f"{g['cells']} ({g['runs']})", g['depths'] or '–',
             percent(g['test_accuracy']),
             _number(g['layers_used'], g['layers_used_sd'], g['runs']),
             percent(g['layers_used_share']), _gate(g['mean_gate']),
             percent(g['share_of_layers_used'])] for _, g in groups.iterrows()]
    depth_rows = [[d['depth'], f"{d['learning_cells']} of {d['cells']}",
                   d['learning_biases'] or '–', _number(d['layers_used_learners']),
                   _number(d['layers_used_others'])]
                  for _, d in nd.gates_by_depth(study.runs).iterrows()]
    return "\n".join([head, "", "Completed highway runs, grouped by their cell's verdict "
                      "(every number is in `needs_depth_gates.csv`):", "",
                      table(["cells of the grid", "cells (runs)", "depths", "mean test accuracy",
                             "layers used", "share of depth used", "mean T over layers",
                             "layers used, pooled over runs"], rows),
                      "Per depth (mean layers used over the runs of each group):", "",
                      table(["depth", "cells that learn", "their carry biases",
                             "layers used (learn)", "layers used (do not)"], depth_rows),
                      figure_link(figures, FIGURES["gates"], "Gates per layer")])


def _mnist(study: Study, figures: dict) -> str:
    head = "### 5. The tent grid beside the MNIST grid"
    if study.highway.empty:
        return _missing(head, f"no highway runs on data={nd.TASK}", nd.COMMANDS["highway"])
    if study.other is None:
        return _missing(head, "no MNIST grid given (add `--compare "
                              "outputs/experiments/blog_depth_bias`)", nd.COMMANDS["mnist"])
    other = nd.family_runs(study.other, "highway")
    if other.empty:
        return _missing(head, f"`--compare {study.other_name}` holds no fully connected "
                              "highway runs", nd.COMMANDS["mnist"])
    both = nd.agreement(study.runs, study.other)
    chance = nd.data_chance(study.other)
    name = _other_data(study)
    tally = {(a, b): both[(both["learns_task"] == a) & (both["learns_other"] == b)]
             for a in (True, False) for b in (True, False)}
    answer = (f"Of the {len(both)} depth x carry-bias cells both grids ran, "
              f"{len(tally[(True, True)])} learn both tasks, {len(tally[(False, True)])} learn "
              f"{name} only (mean test accuracy ≥ {100 * nd.learn_mark(chance):g}%, halfway "
              f"from its chance {100 * chance:g}%), {len(tally[(True, False)])} learn "
              f"{nd.TASK} only and {len(tally[(False, False)])} neither.")
    for (task, other), what in (((False, True), f"{name} but not {nd.TASK}"),
                                ((True, False), f"{nd.TASK} but not {name}")):
        if len(tally[(task, other)]):
            answer += f" Cells that learn {what}: {_by_bias(tally[(task, other)])}."
    return "\n".join([head, "", answer, "", f"Left: {nd.TASK}; right: `{study.other_name}` "
                      f"({name}). Each grid has its own colour scale, from its chance level.",
                      "", figure_link(figures, FIGURES["heatmaps"], "Tent grid beside the MNIST "
                                                                "grid"), "",
                      _other_families(study)])


def _other_families(study: Study) -> str:
    """Question 2 asked of the compared runs: does the carry gate buy anything over an
    identity shortcut on MNIST too?"""
    name = _other_data(study)
    head = f"#### Residual and plain nets against highway nets on {name}"
    if nd.family_runs(study.other, "residual").empty:
        return _missing(head, f"`--compare` holds no residual nets (add their sweep folder "
                              f"after the grid's: `--compare {study.other_name} "
                              f"outputs/experiments/mnist_residual`)",
                        nd.COMMANDS["mnist_residual"])
    chance = nd.data_chance(study.other)
    compared, answer = family_table(nd.compare(study.other, chance), name)
    return "\n".join([head, "", answer, "", compared,
                      f"Bold: the cell learns {name} (mean test accuracy ≥ "
                      f"{100 * nd.learn_mark(chance):g}%). Every number is in "
                      f"`{FAMILIES_COMPARED}`."])


def _by_bias(cells: pd.DataFrame) -> str:
    """'carry bias -20: depth 1, 2; carry bias -5: depth 100' for these cells."""
    return "; ".join(f"carry bias {b:g}: depth {', '.join(str(d) for d in g['depth'])}"
                     for b, g in cells.groupby("carry_bias"))


def _beside(study: Study) -> bool:
    """Whether the --compare runs give a highway grid to draw beside the tent grid."""
    return study.other is not None and not nd.family_runs(study.other, "highway").empty


def _other_title(study: Study) -> str:
    """The panel pools the highway runs of every --compare source: name them all."""
    sources = ", ".join(Path(s).name for s in study.other_name.split())
    return f"{_other_data(study)}: highway runs of {sources}"


def _other_data(study: Study) -> str:
    names = sorted(study.other["data"].dropna().astype(str).unique())
    return ", ".join(names) or "compared runs"


def _part(row, prefix: str) -> dict:
    """The cell `prefix` of a row of needs_depth.compare, as tables.cells names it."""
    return {key: row.get(f"{prefix}_{key}") for key in ("mean", "sd", "completed",
                                                        "diverged", "n", "learns")}


def _depths(compared: pd.DataFrame, prefix: str) -> str:
    learning = compared[compared[f"{prefix}_learns"] == True]["depth"]  # noqa: E712
    if compared[f"{prefix}_mean"].isna().all() and compared[f"{prefix}_n"].isna().all():
        return "no depth (not run)"
    return "depth " + ", ".join(str(d) for d in learning) if len(learning) else "no depth"


def _cell(cell) -> str:
    """Mean ± sd, bold when the cell learns; what happened when no run completed."""
    if cell is None or pd.isna(cell.get("n")):
        return "–"
    if not cell["completed"]:
        n, diverged = int(cell["n"]), int(cell["diverged"])
        if diverged:
            return f"{diverged} of {n} runs diverged" + (
                "" if diverged == n else f", {n - diverged} failed or unfinished")
        return f"no completed run ({n})"
    text = _percent(cell)
    return f"**{text}**" if _yes(cell["learns"]) else text


def _yes(verdict) -> bool:
    """A verdict of needs_depth.learns read back from a table (True, False, None or NaN)."""
    return verdict is not None and not pd.isna(verdict) and bool(verdict)


def _percent(cell) -> str:
    """Mean ± sd of the completed runs, and how many of the cell's runs did not complete."""
    text = percent(cell["mean"], cell["sd"], int(cell["completed"]))
    n, diverged = int(cell["n"]), int(cell["diverged"])
    lost = n - int(cell["completed"]) - diverged  # failed or interrupted
    notes = [f"{k} of {n} runs {what}" for k, what in ((diverged, "diverged"),
                                                         (lost, "failed or unfinished")) if k]
    return text + (f" ({'; '.join(notes)})" if notes else "")


def _verdict(cell) -> str:
    verdict = cell["learns"]
    if verdict is None or pd.isna(verdict):
        return "not measured"
    return "learns" if verdict else "does not learn"


def _number(mean, sd=math.nan, n=1) -> str:
    if mean is None or pd.isna(mean):
        return "–"
    if n and n > 1 and sd is not None and not pd.isna(sd):
        return f"{mean:.1f} ± {sd:.1f}"
    return f"{mean:.1f}"


def _gate(value) -> str:
    return "–" if pd.isna(value) else f"{value:.2g}"


def _points(difference: float) -> str:
    text = f"{100 * difference:+.1f}"
    return "+0.0" if text == "-0.0" else text


def _missing_line(what: str, command: str) -> str:
    return f"Not answered yet: {what}. Produce the runs with:\n\n    {command}\n"


def _missing(head: str, what: str, command: str) -> str:
    return f"{head}\n\n{_missing_line(what, command)}"

