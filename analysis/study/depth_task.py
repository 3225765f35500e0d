"""The depth task's tables (data=tent with centred inputs, docs/study/depth_task.md).

A run *beats the shallow bound* when its test accuracy exceeds, by three standard errors of
its test set, what no one-hidden-layer ReLU net of the deep nets' width can reach
(`highway_study.separation.shallow_bound`): a verdict proven from the task, not a tuned mark.
Cells report how many of their seeds do so, with a Wilson 95% interval. Each family's
setting per depth is chosen on mean validation accuracy, and its test numbers reported.
Pure pandas: no figures, no markdown.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from highway_study import record
from highway_study.separation import shallow_bound

LR = "optimizer.learning_rate"
# Each family's own knob, swept beside the learning rate at the same budget of settings.
KNOBS = {"highway": ["carry_bias"], "residual": ["model.branch_scale"], "plain": [],
         "shallow": ["width", "model.kinks"], "softmax": []}
DEEP_DEPTH = 1000
DEEP_BIASES = (-20.0, -2.0)  # the blog's 1000-layer net, and a moderate carry bias
NEEDED_DROP = 0.05  # a layer is needed when shutting its gate costs 5 points or more
Z95 = 1.959963984540054


def is_task(runs: pd.DataFrame) -> pd.Series:
    """Which runs are on the depth task: tent with inputs centred (the first edition's
    needs-depth runs had them in [0, 1] and stay with analysis.study.needs_depth)."""
    tent = runs["data"].astype(str) == "tent"
    centred = with_config(runs[tent], ["data.centred"])["data.centred"]
    return tent & centred.reindex(runs.index).astype(str).eq("True")


def with_config(runs: pd.DataFrame, keys) -> pd.DataFrame:
    """`runs` with a column for each config key: runs.csv has one only where the runs
    analysed differ in it, so a missing one is read from each run's record."""
    missing = [key for key in keys if key not in runs]
    if not missing or runs.empty:
        return runs.assign(**{key: pd.Series(dtype=object) for key in missing})
    flat = runs["path"].map(lambda path: record.flatten_config(
        (record.read_summary(path).config or {}) if path else {}))
    return runs.assign(**{key: flat.map(lambda config, key=key: config.get(key))
                          for key in missing})


def task_setup(runs: pd.DataFrame) -> dict:
    """k, width and test-set size of the task, read from a highway run's record, and the
    accuracy a run must pass (`mark`)."""
    deep = runs[runs["family"] == "highway"]
    path = (deep if len(deep) else runs)["path"].iloc[0]
    config = record.read_summary(path).config
    k, width, test = config["data"]["k"], config["width"], config["data"]["test_size"]
    bound = shallow_bound(width, k)
    return {"k": k, "width": width, "test_size": test, "bound": bound,
            "kinks": config["model"].get("kinks"),
            "mark": bound + 3 * math.sqrt(bound * (1 - bound) / test)}


def wilson(successes: int, n: int) -> tuple[float, float]:
    """The Wilson 95% interval of a success rate (sound at 0 or n successes of 10)."""
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def cells(runs: pd.DataFrame, mark: float) -> pd.DataFrame:
    """One row per (family, depth, knobs, learning rate) of finished runs (completed or
    diverged; an interrupted run is not a result yet): runs, diverged, mean and sd of test
    accuracy, mean best validation accuracy, runs beating `mark`, its rate and interval."""
    rows = []
    for family, knobs in KNOBS.items():
        keys = ["depth", *knobs, LR]
        mine = with_config(runs[runs["family"] == family], keys)
        if mine.empty:
            continue
        for values, group in mine.groupby(keys, dropna=False):
            group = group[group["status"].isin(["completed", "diverged"])]  # finished runs
            if group.empty:
                continue
            done = group[group["status"] == "completed"]
            wins = int((done["test_accuracy"] > mark).sum())
            low, high = wilson(wins, len(group))
            rows.append({"family": family, **dict(zip(keys, values)), "runs": len(group),
                         "diverged": int((group["status"] == "diverged").sum()),
                         "test_mean": done["test_accuracy"].mean(),
                         "test_sd": done["test_accuracy"].std(),
                         "val_mean": done["best_val_accuracy"].mean(),
                         "beat": wins, "rate": wins / len(group), "low": low, "high": high})
    return pd.DataFrame(rows)


def best(table: pd.DataFrame) -> pd.DataFrame:
    """Per family and depth (per width too for shallow nets), the cell with the highest mean
    best validation accuracy: the setting a user tuning on validation data would pick.
    `settings` counts the cells it was picked from, so a grid still running shows."""
    keys = ["family", "depth"]
    table = table.assign(group_width=table.get("width")).sort_values("val_mean",
                                                                     ascending=False)
    group = keys + ["group_width"]
    table["settings"] = table.groupby(group, dropna=False)["val_mean"].transform("size")
    shallow = table["family"] == "shallow"
    picked = pd.concat([table[~shallow].drop_duplicates(keys),
                        table[shallow].drop_duplicates(group)])
    return picked.drop(columns="group_width").sort_values(
        keys + (["width"] if "width" in picked else [])).reset_index(drop=True)


def deep_question(table: pd.DataFrame) -> pd.DataFrame:
    """The depth-1000 cells at DEEP_BIASES (each at its best learning rate on validation)."""
    deep = table[(table["family"] == "highway") & (table["depth"] == DEEP_DEPTH)]
    deep = deep[deep["carry_bias"].isin(DEEP_BIASES)].sort_values("val_mean", ascending=False)
    return deep.drop_duplicates("carry_bias").sort_values("carry_bias").reset_index(drop=True)


def shut_gates(table: pd.DataFrame, width, kinks) -> pd.DataFrame:
    """Mean test accuracy per learning rate (rows) of the one-hidden-layer net of the deep
    nets' width and kinks, beside highway nets at the most negative carry bias of
    DEEP_BIASES at every depth (columns): a net whose gates stay shut is that shallow net."""
    bias = min(DEEP_BIASES)
    highway = table[(table["family"] == "highway") & (table["carry_bias"] == bias)]
    columns = {f"depth {int(depth)}": group.set_index(LR)["test_mean"]
               for depth, group in highway.groupby("depth")}
    if "width" in table and "model.kinks" in table:
        shallow = table[(table["family"] == "shallow") & (table["width"] == width)
                        & (table["model.kinks"] == kinks)]
        if len(shallow):
            columns = {"one hidden layer": shallow.set_index(LR)["test_mean"], **columns}
    return pd.DataFrame(columns).rename_axis(LR)


def lesion_depth(runs: pd.DataFrame, lesions: pd.DataFrame, mark: float) -> pd.DataFrame:
    """Per highway depth, over the runs that beat `mark`: how many layers each needs (shutting
    that layer's gate alone costs NEEDED_DROP or more), where they sit (layers counted from
    1 at the input: the mean position of a needed layer as a share of the depth, and the
    deepest needed layer) and the largest single-layer cost."""
    winners = runs[(runs["family"] == "highway") & (runs["test_accuracy"] > mark)]
    found = lesions.merge(winners[["run", "depth"]], on="run")
    rows = []
    for depth, group in found.groupby("depth"):
        per_run = group.groupby("run")["accuracy_drop"]
        needed = per_run.apply(lambda drops: int((drops >= NEEDED_DROP).sum()))
        used = group[group["accuracy_drop"] >= NEEDED_DROP]
        rows.append({"depth": depth, "runs": per_run.ngroups,
                     "layers_needed_mean": needed.mean(), "layers_needed_max": needed.max(),
                     "needed_position_mean": ((used["layer"] + 1) / depth).mean(),
                     "deepest_needed_mean": (used.groupby("run")["layer"].max() + 1).mean(),
                     "largest_drop_mean": per_run.max().mean()})
    return pd.DataFrame(rows, columns=LESION_COLUMNS)


LESION_COLUMNS = ["depth", "runs", "layers_needed_mean", "layers_needed_max",
                  "needed_position_mean", "deepest_needed_mean", "largest_drop_mean"]


def gate_use(runs: pd.DataFrame, gates: pd.DataFrame, mark: float) -> pd.DataFrame:
    """Per highway depth and carry bias, layers used (record.layers_used) by the runs that beat
    `mark` and by those that do not, so that the bias and the verdict are not confounded."""
    highway = runs[(runs["family"] == "highway") & (runs["status"] == "completed")]
    bias = highway.set_index("run")["carry_bias"]
    used = {run: record.layers_used(list(group["gate_activity"]), bias.get(run))
            for run, group in gates[gates["run"].isin(bias.index)].groupby("run")}
    highway = highway.assign(layers_used=highway["run"].map(used).astype(float),
                             beats=highway["test_accuracy"] > mark)
    table = highway.groupby(["depth", "carry_bias", "beats"])["layers_used"].agg(["count",
                                                                                 "mean"])
    return table.reset_index().rename(columns={"count": "runs", "mean": "layers_used"})


def as_percent(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) \
        else f"{100 * value:.1f}%"
