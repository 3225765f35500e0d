"""Which runs a cell pools, and how to pick a subset of runs (`--where KEY=VALUE`).

Figures and the report average every cell (model, depth, carry_bias) over its runs, as if
they were seeds. When one folder holds runs that differ in something else too (the blog
and the modern setup, two learning rates, two datasets), that mean mixes them: `pooled`
names such keys, so the analysis can say so, and `select` keeps the runs of one setting.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from analysis.collect import KEY_COLUMNS, AnalysisError, Collection
from analysis.sanitize import MISSING, as_text
from analysis.tables import CELL

# Config keys that do not change what a run learns: seeds are what a cell is meant to
# pool; the others only label a run, place its files or pick an implementation whose
# numerics are tested equal.
NOT_A_SETTING = {"seed", "tensorboard", "data.path", "data.download", "lesion_every",
                 "model.implementation", "model.streams"}


def _is_setting(key: str) -> bool:
    return key not in CELL and key not in NOT_A_SETTING and not key.startswith("tags.")


def texts(column: pd.Series) -> pd.Series:
    """A column of config values as text (as_text), every value a str."""
    return column.map(as_text).astype(object)


def _order(text: str):
    """Numbers in numeric order, then words; 'none' last."""
    if text == MISSING:
        return (2, 0.0, text)
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


def ordered(values) -> list[str]:
    """Distinct texts, numbers first in numeric order, then words, 'none' last."""
    return sorted(set(values), key=_order)


def pooled(collection: Collection) -> dict[str, list[str]]:
    """Setting key -> its values (texts, a missing one 'none'), for keys that differ between
    runs of one cell."""
    runs = collection.runs
    keys = [k for k in ["data", *collection.swept] if k in runs and _is_setting(k)]
    found = {}
    cell = [texts(runs[c]) for c in CELL]
    for key in keys:
        values = texts(runs[key])
        per_cell = values.groupby(cell).nunique()
        if (per_cell > 1).any():
            found[key] = ordered(values)
    return found


def data_sets(runs: pd.DataFrame) -> list[str]:
    """The data sets (texts) of the runs, in order."""
    return ordered(texts(runs["data"])) if "data" in runs and len(runs) else []


def data_sets_warning(runs: pd.DataFrame) -> str | None:
    """One sentence for stderr and the report when the runs are of several data sets, or
    None: figures set their cells side by side without naming the data set."""
    sets = data_sets(runs)
    if len(sets) < 2:
        return None
    return (f"The runs are of {len(sets)} data sets ({_listed(sets)}): the report's tables "
            "are per data set, but the figures draw every run together without naming its "
            f"data set; pick one with --where, e.g. --where data={sets[0]}.")


def pooled_warning(found: dict[str, list[str]]) -> str | None:
    """One sentence for stderr and the report, or None when no cell mixes settings."""
    if not found:
        return None
    mixed = "; ".join(f"{key} ({_listed(values)})" for key, values in found.items())
    key, values = next(iter(found.items()))
    return (f"Cells pool runs that differ in {mixed}, so their means mix those settings: "
            f"pick one with --where, e.g. --where {key}={values[0]}.")


def _listed(values: list[str], most: int = 6) -> str:
    """The values, or for a search's many values their count and range."""
    if len(values) <= most:
        return ", ".join(values)
    numbers = pd.to_numeric(pd.Series(values), errors="coerce")
    if numbers.notna().all():
        return f"{len(values)} values from {numbers.min():.3g} to {numbers.max():.3g}"
    return f"{', '.join(values[:most])} and {len(values) - most} more"


def parse_where(text: str) -> tuple[str, str]:
    """'optimizer.learning_rate=0.01' -> ('optimizer.learning_rate', '0.01')."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise AnalysisError(f"--where {text!r} is not KEY=VALUE, e.g. --where "
                            "loss_reduction=sum.")
    return key.strip(), value.strip()


def select(collection: Collection, conditions: list[tuple[str, str]]) -> Collection:
    """The runs whose config matches every KEY=VALUE (numbers compared as numbers)."""
    runs = collection.runs
    keep = pd.Series(True, index=runs.index)
    for key, value in conditions:
        if key not in runs or key in ("run", "path", "status", "error"):
            choices = ", ".join(k for k in [*KEY_COLUMNS, *collection.swept] if k in runs)
            raise AnalysisError(f"--where {key}={value}: {key!r} is not a config key that "
                                f"varies across these runs; use one of: {choices}.")
        keep &= _matches(runs[key], value)
    if not keep.any():
        wanted = " and ".join(f"{k}={v}" for k, v in conditions)
        raise AnalysisError(f"No run has {wanted}.")
    names = set(runs.loc[keep, "run"])
    chosen = runs[keep]
    still_swept = [k for k in collection.swept if texts(chosen[k]).nunique() > 1]

    def only(frame):
        return frame[frame["run"].isin(names)].reset_index(drop=True)

    return dataclasses.replace(
        collection, runs=only(runs), curves=only(collection.curves),
        points=only(collection.points), gate_points=only(collection.gate_points),
        gates=only(collection.gates), lesions=only(collection.lesions), swept=still_swept,
        selection=collection.selection + [f"{k}={v}" for k, v in conditions],
    )


def _matches(column: pd.Series, value: str) -> pd.Series:
    """KEY=none matches the runs without the key; numbers compare as numbers."""
    as_text = (column.astype(str) == value) | (texts(column) == value)
    try:
        number = float(value)
    except ValueError:
        return as_text
    return as_text | (pd.to_numeric(column, errors="coerce") == number)
