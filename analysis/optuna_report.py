"""The report's section on an Optuna study: its best trial (one objective) or its
Pareto-optimal trials as a table (several), the parameters' importances, and the figures.

Numbers are shown as people read them: accuracies in percent, layer counts as integers,
parameters to three significant digits.
"""

from __future__ import annotations

import pandas as pd

from analysis.markdown import figure_link, table
from analysis.optuna_study import best_index

NAMES = {"optimizer.learning_rate": "learning rate", "best_val_accuracy": "best val accuracy",
         "final_val_accuracy": "final val accuracy", "test_accuracy": "test accuracy",
         "layers_used": "layers used"}


def section(name: str, trials: pd.DataFrame, figures: dict) -> str:
    head = f"## Optuna study `{name}`"
    if trials.empty:
        return f"{head}\n\nThe study has no finished trials yet."
    columns, labels = trials.attrs["objectives"], trials.attrs["labels"]
    params = trials.attrs["params"]
    lines = [head, "", f"{len(trials)} finished trials over {', '.join(params)}. All trials "
                       "are in `optuna_trials.csv`.", ""]
    if len(columns) == 1:
        lines += [_best(trials, columns[0], labels[0], params), ""]
    else:
        lines += _pareto(trials, columns, labels, params) + [""]
    lines += [_importances(trials, columns, labels), ""]
    lines += [figure_link(figures, key, caption) + "\n" for key, caption in _captions(figures)]
    return "\n".join(lines).rstrip() + "\n"


def _best(trials, column, label, params) -> str:
    best = trials.loc[best_index(trials)]
    settings = ", ".join(f"{NAMES.get(p, p)} = {number(best[p])}" for p in params)
    what = "" if label == column else f" ({NAMES.get(label, label)} {show(label, best[column])})"
    return (f"Best trial {int(best['number'])}: best value {best[column]:.4f}{what}, "
            f"at {settings}.")


def _pareto(trials, columns, labels, params) -> list[str]:
    front = trials[trials["pareto_optimal"]].sort_values(columns, ascending=False)
    header = ["trial", *[NAMES.get(label, label) for label in labels],
              *[NAMES.get(p, p) for p in params]]
    rows = [[str(int(row["number"])), *[show(label, row[c]) for c, label in zip(columns, labels)],
             *[number(row[p]) for p in params]] for _, row in front.iterrows()]
    return [f"{len(front)} Pareto-optimal trial{'s' if len(front) != 1 else ''} (no other "
            "trial is as good on every objective and better on one):", "",
            table(header, rows).rstrip("\n")]


def _importances(trials, columns, labels) -> str:
    found = trials.attrs.get("importances")
    if not found:
        why = trials.attrs.get("importance_error", "Optuna could not compute them")
        return f"Parameter importances are not drawn: {why}."
    parts = []
    for column, label in zip(columns, labels):
        values = sorted(found.get(column, {}).items(), key=lambda item: -item[1])
        shown = ", ".join(f"{NAMES.get(p, p)} {v:.2f}" for p, v in values)
        parts.append(f"{NAMES.get(label, label)}: {shown}" if len(columns) > 1 else shown)
    return "Parameter importances (a random forest's mean decrease in impurity, summing to 1): " + \
        "; ".join(parts) + "."


CAPTIONS = {"optuna": "Optuna trials", "optuna_pareto": "Pareto front",
            "optuna_history": "Optimisation history",
            "optuna_importances": "Parameter importances", "optuna_slice": "Slices"}


def _captions(figures) -> list[tuple[str, str]]:
    """(figure, caption) in the order of CAPTIONS; a figure per objective
    (optuna_history_layers_used) is captioned with the objective's name."""
    picked = []
    for key, caption in CAPTIONS.items():
        for name in sorted(figures):
            objective = name[len(key) + 1:] if name.startswith(key + "_") else None
            if name == key:
                picked.append((name, caption))
            elif objective and key != "optuna" and f"optuna_{objective}" not in CAPTIONS:
                picked.append((name, f"{caption} of {NAMES.get(objective, objective)}"))
    return picked


def show(label: str, value) -> str:
    """An objective's value: accuracies in percent, layer counts as integers."""
    if str(label).endswith("accuracy"):
        return f"{100 * value:.2f}%"
    if label == "layers_used":
        return str(int(round(value)))
    return number(value)


def number(value) -> str:
    """A parameter as people read it: integers whole, other numbers to 3 significant digits."""
    if isinstance(value, (bool, str)) or pd.isna(value):
        return str(value)
    if float(value).is_integer() and abs(value) >= 1:
        return str(int(value))
    return f"{value:.3g}"

