"""The needs-depth study's tables (data=tent): which depth x carry-bias cells learn the task,
how residual and plain nets of each depth compare, whether the deepest, most carrying net
is the shallow net in disguise, and how the gates of learners and non-learners differ.

The one definition of "learns" is here (`learns`, `LEARNS`), so that every table, figure
and sentence of the section uses the same verdict. Pure pandas: no figures, no markdown.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import tables
from analysis.collect import chance
from highway_study import record

TASK = "tent"  # the data set of the study (highway_study/data/tent.py)
TASK_CHANCE = chance({"name": TASK})  # 50%: two balanced classes


def learn_mark(chance_level: float) -> float:
    """The mean test accuracy from which a cell learns: halfway from chance to perfect."""
    return chance_level + (1.0 - chance_level) / 2


LEARNS = learn_mark(TASK_CHANCE)  # 75% on tent; the MNIST grid's mark is learn_mark(0.1)
MODERATE_BIAS = -2.0  # the calibration's carry bias, inside the paper's -1..-3
DEEP = (1000, -20.0)  # the blog's net, a shallow net in disguise on MNIST
COMMANDS = {
    "highway": "python -m highway_study experiment=needs_depth hydra/launcher=population",
    "deep": ("python -m highway_study experiment=needs_depth depth={depth} carry_bias={bias:g} "
             "hydra/launcher=population"),  # the one cell of question 3 (the row costs hours)
    "baselines": "python -m highway_study experiment=needs_depth_baselines",
    "shallow": "python -m highway_study experiment=needs_depth_shallow",
    "mnist": ("HIGHWAY_STUDY_DATA=/path/to/data python -m highway_study "
              "experiment=blog_depth_bias seed=0,1,2 hydra/launcher=population"),
    "mnist_residual": ("HIGHWAY_STUDY_DATA=/path/to/data python -m highway_study "
                       "experiment=mnist_residual hydra/launcher=joblib "
                       "hydra.launcher.n_jobs=2"),
}


def task_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs on the first edition's needs-depth task (tent with inputs in [0, 1]; the
    depth task's centred runs are analysis.study.depth_task's)."""
    from analysis.study.depth_task import is_task

    return runs[(runs["data"].astype(str) == TASK) & ~is_task(runs)]


def family_runs(runs: pd.DataFrame, family: str) -> pd.DataFrame:
    """One family's fully connected runs; carry_bias dropped (NaN) where no gate reads it,
    so gateless nets pool their seeds over it."""
    chosen = tables.fully_connected(runs, family)
    return chosen.assign(
        carry_bias=chosen["carry_bias"].where(tables.is_gated(chosen["model"])))


def with_layers_used(runs: pd.DataFrame, gates: pd.DataFrame) -> pd.DataFrame:
    """`runs` with layers_used (record.layers_used: layers whose final mean transform gate
    is at least record.used_floor of the run's carry bias), NaN for runs without gates."""
    bias = runs.set_index("run")["carry_bias"]
    used = {run: record.layers_used(list(group["gate_activity"]), bias.get(run))
            for run, group in gates.groupby("run")}
    return runs.assign(layers_used=runs["run"].map(used).astype(float))


def learns(cell, chance_level: float = TASK_CHANCE) -> bool | None:
    """The one verdict of a cell (a row of tables.cells on test_accuracy): True when none of
    its runs diverged and the mean test accuracy of its completed runs reaches
    learn_mark(chance_level) (LEARNS = 75% on tent); False when a run diverged or the mean
    is lower; None when no run finished (nothing measured)."""
    if cell["diverged"] > 0:
        return False
    if cell["completed"] == 0:
        return None
    return bool(cell["mean"] >= learn_mark(chance_level))


def verdicts(runs: pd.DataFrame, chance_level: float = TASK_CHANCE) -> pd.DataFrame:
    """Per cell (model, depth, carry_bias) of `runs`: tables.cells on test accuracy, the
    verdict `learns`, and mean / sd of layers_used when the runs have that column."""
    cells = tables.cells(runs, "test_accuracy")
    cells["learns"] = pd.Series([learns(cell, chance_level) for _, cell in cells.iterrows()],
                                index=cells.index, dtype=object)
    if "layers_used" in runs:
        used = tables.cells(runs, "layers_used")
        cells["layers_used"], cells["layers_used_sd"] = used["mean"], used["sd"]
    return cells


def grid(runs: pd.DataFrame) -> pd.DataFrame:
    """Every highway cell of the task: depth, carry_bias, runs, mean / sd test accuracy,
    learns, layers used."""
    return verdicts(family_runs(runs, "highway"))


def compare(runs: pd.DataFrame, chance_level: float = TASK_CHANCE) -> pd.DataFrame:
    """Per depth: plain, residual, highway at its best carry bias (the one that learns with
    the highest mean; the highest mean when none learns) and at MODERATE_BIAS, each as
    mean, sd, run counts and learns (NaN where the depth was not run). `chance_level` is
    the data's (learns: halfway from it to perfect), so the table also reads MNIST runs."""
    columns = {}
    for name, family, pick in (("plain", "plain", None), ("residual", "residual", None),
                               ("highway_best", "highway", "best"),
                               ("highway_moderate", "highway", MODERATE_BIAS)):
        cells = verdicts(family_runs(runs, family), chance_level)
        if pick == "best":  # the carry bias that learns with the highest mean, else any
            cells = cells.assign(ok=cells["learns"] == True)  # noqa: E712
            cells = cells.sort_values(["ok", "mean"], ascending=False, na_position="last")
            cells = cells.drop_duplicates("depth")
        elif pick is not None:
            cells = cells[cells["carry_bias"] == pick]
        keep = cells.set_index("depth")[["mean", "sd", "completed", "diverged", "n",
                                         "learns", "carry_bias"]]
        columns[name] = keep.add_prefix(f"{name}_")
    table = pd.concat(columns.values(), axis=1).sort_index()
    table.index.name = "depth"
    return table.reset_index()


def reference(runs: pd.DataFrame, family: str) -> pd.Series | None:
    """The one cell of a depthless baseline (shallow, softmax), or None when not run."""
    cells = verdicts(family_runs(runs, family))
    return cells.iloc[0] if len(cells) else None


def deep_vs_shallow(runs: pd.DataFrame) -> dict | None:
    """The DEEP cell beside the shallow net: their cells, the depth, the most layers any of
    its seeds uses, and whether it behaves as the MNIST finding predicts (`prediction`:
    it uses no layer and its verdict equals the shallow net's). None without the DEEP cell."""
    highway = grid(runs)
    depth, bias = DEEP
    found = highway[(highway["depth"] == depth) & (highway["carry_bias"] == bias)]
    if found.empty:
        return None
    deep = found.iloc[0]
    members = family_runs(runs, "highway")
    members = members[(members["depth"] == depth) & (members["carry_bias"] == bias)]
    most_used = members["layers_used"].max() if "layers_used" in members else np.nan
    shallow = reference(runs, "shallow")
    unused = bool(most_used == 0)
    same = None if shallow is None else deep["learns"] == shallow["learns"]
    return {"deep": deep, "shallow": shallow, "softmax": reference(runs, "softmax"),
            "most_layers_used": most_used, "uses_no_layer": unused,
            "prediction": None if same is None else bool(unused and same)}


def gate_groups(runs: pd.DataFrame, gates: pd.DataFrame) -> pd.DataFrame:
    """Learning vs non-learning highway cells (completed runs): cells, runs, depths, mean
    test accuracy, layers used (mean, and as a share of depth), mean transform gate over
    layers and runs, and the share of all their layers that are used."""
    highway = family_runs(runs, "highway")
    highway = highway[highway["status"] == "completed"]
    cells = grid(runs)[["depth", "carry_bias", "learns"]]
    highway = highway.merge(cells, on=["depth", "carry_bias"], how="left")
    layer = gates.merge(highway[["run", "learns"]], on="run")
    rows = []
    for verdict, label in ((True, "learns"), (False, "does not learn")):
        group = highway[highway["learns"] == verdict]
        layers = layer[layer["learns"] == verdict]["gate_activity"].astype(float)
        share = group["layers_used"] / group["depth"].astype(float)
        rows.append({
            "group": label,
            "cells": len(group.drop_duplicates(["depth", "carry_bias"])),
            "runs": len(group),
            "depths": ",".join(str(d) for d in sorted(group["depth"].unique())),
            "test_accuracy": group["test_accuracy"].mean(),
            "layers_used": group["layers_used"].mean(),
            "layers_used_sd": group["layers_used"].std(),
            "layers_used_share": share.mean(),
            "mean_gate": layers.mean(),
            "share_of_layers_used": group["layers_used"].sum() / group["depth"].sum()
            if len(layers) else np.nan,
        })
    return pd.DataFrame(rows)


def gates_by_depth(runs: pd.DataFrame) -> pd.DataFrame:
    """Per depth: learning cells out of cells, and mean layers used in learning and in
    non-learning cells (completed highway runs)."""
    cells = grid(runs)
    rows = []
    for depth, group in cells.groupby("depth"):
        yes, no = group[group["learns"] == True], group[group["learns"] == False]  # noqa: E712
        rows.append({"depth": depth, "cells": len(group), "learning_cells": len(yes),
                     "learning_biases": ",".join(f"{b:g}" for b in yes["carry_bias"]),
                     "layers_used_learners": yes["layers_used"].mean(),
                     "layers_used_others": no["layers_used"].mean()})
    return pd.DataFrame(rows)


def gate_profile(runs: pd.DataFrame, gates: pd.DataFrame) -> pd.DataFrame:
    """Final mean transform gate per layer of the completed highway runs of the cells where
    some seeds reach the mark and others do not, grouped by each run's own result ("learns"
    / "does not learn"): the figure's data. Comparing runs within the same cells keeps the
    carry bias out of the comparison (across cells, the non-learners are mostly the most
    negative biases, whose gates are shut from the start)."""
    highway = family_runs(runs, "highway")
    highway = highway[highway["status"] == "completed"]
    highway = highway.assign(learns=highway["test_accuracy"] >= LEARNS)
    mixed = highway.groupby(["depth", "carry_bias"])["learns"].transform("nunique") == 2
    keys = highway[mixed][["run", "depth", "learns"]]
    profile = gates.merge(keys, on="run")
    profile["group"] = profile["learns"].map({True: "learns", False: "does not learn"})
    return profile


def data_chance(runs: pd.DataFrame) -> float:
    """Chance accuracy of the runs' data (the first data name they hold; 10% if none)."""
    names = runs["data"].dropna().astype(str).unique()
    return chance({"name": names[0]} if len(names) else {})


def agreement(task: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    """The highway cells both grids ran: depth, carry_bias, mean test accuracy and verdict
    in each (each grid judged against its own chance: 75% on tent, 55% on MNIST)."""
    left = grid(task)[["depth", "carry_bias", "mean", "learns"]]
    right = verdicts(family_runs(other, "highway"), data_chance(other))
    right = right[["depth", "carry_bias", "mean", "learns"]]
    return left.merge(right, on=["depth", "carry_bias"], suffixes=("_task", "_other"))
