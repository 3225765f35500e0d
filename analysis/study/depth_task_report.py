"""The depth task's section (depth_task.md, also appended to report.md), tables and figure.

Written whenever the runs analysed hold depth-task runs (tent with centred inputs), so that
`python -m analysis outputs/experiments/depth_task*` answers the section's questions with
no flag to remember. A question whose runs are missing says so and names the command.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.markdown import figure_link, table, write_section
from analysis.study import depth_task as dt

SECTION_FILE = "depth_task.md"
FIGURE = "depth_task_success"
COMMAND = "python -m highway_study experiment={}"


@dataclass
class Study:
    runs: pd.DataFrame
    gates: pd.DataFrame
    lesions: pd.DataFrame
    setup: dict

    @property
    def cells(self) -> pd.DataFrame:
        return dt.cells(self.runs, self.setup["mark"])


def prepare(collection) -> Study | None:
    """The depth-task runs of the collection, or None when it holds none."""
    if collection is None:
        return None
    runs = collection.runs[dt.is_task(collection.runs)]
    if runs.empty:
        return None
    keep = set(runs["run"])
    return Study(runs, collection.gates[collection.gates["run"].isin(keep)],
                 collection.lesions[collection.lesions["run"].isin(keep)], dt.task_setup(runs))


def drawers(study: Study) -> dict:
    return {FIGURE: lambda: draw(study)}


def draw(study: Study):
    """Share of seeds beating the shallow bound, with Wilson intervals: left, each deep
    family at the setting it scores best with on validation data, over depth; right, the
    nets without depth (one hidden layer per width, softmax regression)."""
    from analysis.plots import plt, sns

    picked = dt.best(study.cells)
    fig, (deep_ax, flat_ax) = plt.subplots(1, 2, figsize=(10, 4.2), width_ratios=[2.2, 1],
                                           sharey=True, layout="constrained")
    colors = dict(zip(dt.KNOBS, sns.color_palette("colorblind", len(dt.KNOBS))))
    deep = picked[picked["family"].isin(["highway", "residual", "plain"])]
    grid = deep[deep["depth"] != dt.DEEP_DEPTH]
    # A depth whose settings are not all finished (its grid still running) is left out, named.
    full = grid.groupby("family")["settings"].transform("max")
    running = grid[grid["settings"] < full]
    grid = grid[grid["settings"] >= full]
    for family, group in grid.groupby("family"):
        group = group.sort_values("depth")
        deep_ax.errorbar(group["depth"].astype(float), 100 * group["rate"],
                         yerr=_errors(group), marker="o", capsize=3, color=colors[family],
                         label=family)
    # depth_task_deep tries two settings, not the grid's: a point apart, not a line's end
    for family, group in deep[deep["depth"] == dt.DEEP_DEPTH].groupby("family"):
        deep_ax.errorbar(group["depth"].astype(float), 100 * group["rate"],
                         yerr=_errors(group), marker="D", linestyle="none", capsize=3,
                         color=colors[family],
                         label=f"{family}, depth {dt.DEEP_DEPTH}: {_setting(group.iloc[0])} "
                               f"(best of {group.iloc[0]['settings']} tried)")
    depths = sorted(int(d) for d in deep["depth"].dropna().unique())
    deep_ax.set_xscale("log")
    deep_ax.set_xticks(depths, [str(d) for d in depths])
    deep_ax.minorticks_off()
    deep_ax.set(xlabel=f"depth (hidden layers of width {study.setup['width']})",
                ylabel="seeds beating the shallow bound (%)", ylim=(-5, 105),
                title="deep nets, each at its best setting" + "".join(
                    f"\n({family} at depth {int(depth)}: still running, left out)"
                    for family, depth in zip(running["family"], running["depth"])))
    if len(deep):
        deep_ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    flat = picked[picked["family"].isin(["shallow", "softmax"])].copy()
    flat["label"] = [f"{int(w)} units" if f == "shallow" else "softmax"
                     for f, w in zip(flat["family"], flat.get("width", [None] * len(flat)))]
    x = range(len(flat))
    flat_ax.errorbar(list(x), 100 * flat["rate"], yerr=_errors(flat), fmt="s", capsize=3,
                     color=colors["shallow"])
    flat_ax.set_xticks(list(x), flat["label"], rotation=45, ha="right")
    flat_ax.set(title="no depth: one hidden layer, softmax")
    fig.suptitle(f"tent k={study.setup['k']}: share of seeds above "
                 f"{100 * study.setup['mark']:.1f}% test accuracy (95% Wilson intervals)")
    return fig


def _errors(group):
    return [(100 * (group["rate"] - group["low"])).clip(lower=0),
            (100 * (group["high"] - group["rate"])).clip(lower=0)]


def write(study: Study, figures: dict, out: Path) -> str:
    """Write the section and its tables into `out`; return the section's text."""
    cells = study.cells
    picked = dt.best(cells)
    cells.to_csv(out / "depth_task_cells.csv", index=False)
    picked.to_csv(out / "depth_task_best.csv", index=False)
    lesion = dt.lesion_depth(study.runs, study.lesions, study.setup["mark"])
    lesion.to_csv(out / "depth_task_lesions.csv", index=False)
    gates = dt.gate_use(study.runs, study.gates, study.setup["mark"])
    gates.to_csv(out / "depth_task_gates.csv", index=False)
    setup = study.setup
    text = [
        "## The depth task\n",
        f"tent k={setup['k']} with the number alone, centred; deep nets of width "
        f"{setup['width']}. No one-hidden-layer net of width {setup['width']} can pass "
        f"{100 * setup['bound']:.2f}% (separation.shallow_bound); a run *beats the bound* when "
        f"its test accuracy passes {dt.as_percent(setup['mark'])} (the bound plus three "
        f"standard errors of a {setup['test_size']}-example test set). Tables: "
        "depth_task_cells.csv (every cell), depth_task_best.csv (each family's setting per "
        "depth, picked on validation accuracy), depth_task_lesions.csv, depth_task_gates.csv.\n",
        figure_link(figures, FIGURE, "Seeds beating the shallow bound, per family and depth"),
        "\n### Each family at its best setting (picked on validation)\n",
        _best_table(picked),
        "\n### The 1000-layer question\n",
        _deep_text(cells, picked, setup),
        "\n### Is the depth used? (lesions of the highway runs that beat the bound, any "
        "setting)\n",
        _lesion_table(lesion),
    ]
    return write_section(out, SECTION_FILE, "\n".join(text))


def _setting(row) -> str:
    knobs = [f"{k.split('.')[-1]} {row[k]:g}" if isinstance(row[k], float) else
             f"{k.split('.')[-1]} {row[k]}" for k in dt.KNOBS[row["family"]] if k in row]
    return ", ".join(knobs + [f"rate {row[dt.LR]:g}"])


def _best_table(picked: pd.DataFrame) -> str:
    return table(["family", "depth", "setting", "settings compared", "seeds", "beat the bound",
                  "95% interval", "test accuracy"],
                 [[row["family"], row["depth"], _setting(row), row["settings"], row["runs"],
                   _beat(row), f"{100 * row['low']:.0f}-{100 * row['high']:.0f}%",
                   _accuracy(row)] for _, row in picked.iterrows()])


def _beat(row) -> str:
    return f"{row['beat']} of {row['runs']}"


def _accuracy(row) -> str:
    return f"{100 * row['test_mean']:.1f} ± {100 * row['test_sd']:.1f}%"


def _deep_text(cells: pd.DataFrame, picked: pd.DataFrame, setup: dict) -> str:
    deep = dt.deep_question(cells)
    if deep.empty:
        return (f"Not run: `{COMMAND.format('depth_task_deep')}` trains depth "
                f"{dt.DEEP_DEPTH} at carry biases {', '.join(f'{b:g}' for b in dt.DEEP_BIASES)}.\n")
    shallow = picked[(picked["family"] == "shallow") & (picked.get("width") == deep_width(cells))]
    rows = [[f"highway, depth {dt.DEEP_DEPTH}", _setting(row), _beat(row), _accuracy(row)]
            for _, row in deep.iterrows()]
    rows += [["one hidden layer", _setting(row), _beat(row), _accuracy(row)]
             for _, row in shallow.iterrows()]
    return table(["net", "setting", "beat the bound", "test accuracy"], rows) \
        + _shut_table(cells, setup)


def _shut_table(cells: pd.DataFrame, setup: dict) -> str:
    """Highway nets at carry bias -20, every depth, beside the shallow net they start as."""
    shut = dt.shut_gates(cells, setup["width"], setup["kinks"])
    if shut.empty:
        return ""
    return (f"\nMean test accuracy at carry bias {min(dt.DEEP_BIASES):g}, every depth, beside "
            f"the one-hidden-layer net of width {setup['width']} with the same input layer "
            f"(kinks {setup['kinks']}):\n\n") + table(
        ["rate", *shut.columns],
        [[f"{rate:g}", *("not run" if pd.isna(value) else f"{100 * value:.1f}%"
                         for value in row)] for rate, row in shut.iterrows()])


def deep_width(cells: pd.DataFrame):
    """The deep nets' width: the shallow width the 1000-layer net is compared with."""
    widths = cells.loc[cells["family"] == "shallow", "width"] if "width" in cells else []
    return min(widths) if len(widths) else None


def _lesion_table(lesion: pd.DataFrame) -> str:
    if lesion.empty:
        return "No highway run beat the bound with lesions recorded.\n"
    rows = [[int(row["depth"]), int(row["runs"]),
             f"{row['layers_needed_mean']:.1f}, {int(row['layers_needed_max'])}",
             f"{100 * row['needed_position_mean']:.0f}% of the depth",
             f"{row['deepest_needed_mean']:.1f}",
             f"{100 * row['largest_drop_mean']:.1f} points"] for _, row in lesion.iterrows()]
    return table(["depth", "runs", "layers needed (mean, most)",
                  "mean position of a needed layer", "deepest needed layer (mean)",
                  "largest single-layer cost"], rows) + (
        f"\nA layer is *needed* when shutting its gate alone costs "
        f"{100 * dt.NEEDED_DROP:.0f} points or more; layers count from 1 at the input.\n")
