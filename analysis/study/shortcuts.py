"""report.md's shortcut section: does a highway layer's carry gate buy anything over an
identity shortcut (residual_fc, y = x + H(x)) of the same width and depth?

Written whenever the runs analysed hold residual nets on a data set other than the tent
task (whose own section, needs_depth.md, asks the same question beside its other ones).
Per data set, one table with a row per depth: plain, residual, and highway nets at their
best carry bias and at -2, with the verdict rule of analysis.study.needs_depth (a cell learns
when its mean test accuracy is halfway from chance to perfect and no seed diverged).
"""

from __future__ import annotations

import pandas as pd

from analysis.study import needs_depth as nd
from analysis.study.needs_depth_report import family_table
from highway_study import catalog

HEAD = "## Carry gate or identity shortcut: residual nets against highway nets"
TABLE = "shortcuts.csv"  # every number of the section


def groups(runs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(label, runs) per data set that holds residual nets, tent excluded. Runs of two
    recipes (setup=blog and setup=modern) share cells: analyse them apart (report.md's
    header warns when a cell pools settings)."""
    runs = runs[runs["data"].astype(str) != nd.TASK]
    return [(f"data={data}", part) for data, part in runs.groupby(runs["data"].astype(str))
            if (part["model"].map(catalog.family) == "residual").any()]


def section(runs: pd.DataFrame, out_dir) -> str | None:
    """The markdown section (None without residual nets) and shortcuts.csv in out_dir."""
    found = groups(runs)
    if not found:
        return None
    lines, tables = [HEAD, ""], []
    for label, part in found:
        chance = nd.data_chance(part)
        table = nd.compare(part, chance)
        compared, answer = family_table(table, label)
        lines += [f"### {label}", "", answer, "", compared,
                  f"Bold: the cell learns (mean test accuracy ≥ "
                  f"{100 * nd.learn_mark(chance):g}%, halfway from chance, and no seed "
                  f"diverged). Every number is in `{TABLE}`.", ""]
        tables.append(table.assign(group=label))
    pd.concat(tables, ignore_index=True).to_csv(out_dir / TABLE, index=False)
    return "\n".join(lines).rstrip("\n")
