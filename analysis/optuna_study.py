"""Reading an Optuna study (the hparams search's SQLite storage) into a tidy trials table.

Uses Optuna's own API (get_all_study_summaries, load_study). An sqlite URL whose file does
not exist is refused before Optuna sees it, because Optuna would create an empty database.

The table has one row per finished trial: `number`, `state`, the objective values (`value`
for a one-objective study; for several, one column per objective, named after the
objectives the search recorded, else `values_0`, `values_1`, ...; and `pareto_optimal`)
and every searched parameter, whatever the study searched (depth, carry_bias, the learning
rate, ...). What the figures and the report need beyond the rows is in `frame.attrs`:
`objectives` (the value columns, in order), `labels` (what each measures), `directions`,
`params` (searched), and the importances of the parameters for each objective
(`importances`, or why there are none: `importance_error`).
"""

from __future__ import annotations

import ast
from datetime import datetime
from pathlib import Path

import pandas as pd

from analysis.collect import AnalysisError
from highway_study import record

# Parameters this analysis knows how to draw: a study must have searched at least one.
KNOWN = ("carry_bias", "depth", "optimizer.learning_rate", "optimizer.momentum", "width",
         "batch_size", "epochs", "max_steps", "seed")
# Parameters drawn on a log scale (they span decades).
LOG_SCALE = ("optimizer.learning_rate", "depth")
IMPORTANCE_SEED = 0  # the same importances in the figure and the report, run after run


def load_trials(storage: str, study_name: str | None = None) -> tuple[str, pd.DataFrame]:
    """(study name, one row per finished trial: number, value(s), and every searched param)."""
    study = load_study(storage, study_name)
    return study.study_name, trials_table(study)


def load_study(storage: str, study_name: str | None = None):
    """The study named (default: the newest in the storage); AnalysisError in one sentence
    for a storage that cannot be read, holds no study or not this one."""
    import optuna

    summaries = _summaries(storage)
    names = [s.study_name for s in summaries]
    if study_name is None:
        # The newest study, as a sweep that is re-run creates or extends the latest one.
        newest = max(summaries, key=lambda s: s.datetime_start or datetime.min)
        study_name = newest.study_name
    elif study_name not in names:
        raise AnalysisError(
            f"Optuna study {study_name!r} is not in {shown(storage)!r}: use one of "
            f"{', '.join(names)}.")
    return optuna.load_study(study_name=study_name, storage=storage)


def study_names(storage: str) -> list[str]:
    """The names of the storage's studies, oldest first."""
    summaries = sorted(_summaries(storage), key=lambda s: s.datetime_start or datetime.min)
    return [s.study_name for s in summaries]


def _summaries(storage: str) -> list:
    """The storage's study summaries; AnalysisError for a storage that cannot be read or
    holds no study."""
    import optuna

    _check_sqlite_file(storage)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        summaries = optuna.get_all_study_summaries(storage=storage)
    except Exception as error:  # noqa: BLE001 - any storage error is the user's URL or file
        raise AnalysisError(
            f"Cannot read Optuna storage {shown(storage)!r}: {_first_line(error, storage)}."
        ) from None
    if not summaries:
        raise AnalysisError(f"Optuna storage {shown(storage)!r} holds no study.")
    return summaries


def trials_table(study) -> pd.DataFrame:
    """Finished trials with their values; params named as searched (e.g.
    optimizer.learning_rate); the study's objectives, directions and importances in attrs."""
    directions = [d.name.lower() for d in study.directions]
    columns = value_columns(study)
    frame = study.trials_dataframe(attrs=("number", "value", "state", "params"))
    frame = frame.rename(columns=lambda c: c.removeprefix("params_"))
    if len(columns) > 1:
        frame = frame.rename(columns={f"values_{i}": c for i, c in enumerate(columns)})
    params = [c for c in frame if c not in ("number", "state", *columns)]
    if study.trials and not set(params) & set(KNOWN):  # no trial yet: nothing to judge
        raise AnalysisError(
            f"Optuna study {study.study_name!r} searched none of the parameters this analysis "
            f"draws ({', '.join(KNOWN)}): its parameters are {', '.join(params) or 'none'}.")
    if frame.empty:
        frame = pd.DataFrame(columns=["number", "state", *columns, *params])
    frame = frame[(frame["state"] == "COMPLETE") & frame[columns].notna().all(axis=1)]
    for column in params:
        numeric = pd.to_numeric(frame[column], errors="coerce")
        if numeric.notna().all():
            frame[column] = numeric
    frame = frame.reset_index(drop=True)
    if len(columns) > 1:
        best = {trial.number for trial in study.best_trials}
        frame["pareto_optimal"] = frame["number"].isin(best)
    frame.attrs.update(objectives=columns, labels=labels(study, columns),
                       directions=directions, params=params, **importances(study, columns))
    return frame


def best_index(trials: pd.DataFrame):
    """The row label of the best finished trial by the study's first objective and direction."""
    column = trials.attrs["objectives"][0]
    maximize = trials.attrs.get("directions", ["maximize"])[0] == "maximize"
    return trials[column].idxmax() if maximize else trials[column].idxmin()


def value_columns(study) -> list[str]:
    """`value` for one objective; else the objectives' names as the search recorded them
    (the study's attribute, else the trials' `optimized_metric` user attribute), or
    values_0, values_1, ... when they cannot be known."""
    count = len(study.directions)
    if count == 1:
        return ["value"]
    names = study.user_attrs.get(record.STUDY_OBJECTIVES_ATTR)
    if names is None:
        for trial in study.trials:
            if "optimized_metric" in trial.user_attrs:  # a fixed override, e.g. "[a,b]"
                names = _names(trial.user_attrs["optimized_metric"])
                break
    if (isinstance(names, list) and len(names) == count and len(set(names)) == count
            and all(isinstance(n, str) and n not in ("number", "state") for n in names)):
        return names
    return [f"values_{i}" for i in range(count)]


def labels(study, columns: list[str]) -> list[str]:
    """What each value column measures, for axes and the report: the objectives' names,
    also for a one-objective study whose search recorded its objective."""
    names = study.user_attrs.get(record.STUDY_OBJECTIVES_ATTR)
    if columns == ["value"] and isinstance(names, list) and len(names) == 1:
        return [str(names[0])]
    return list(columns)


def importances(study, columns: list[str]) -> dict:
    """{"importances": {column: {param: importance}}} (importance_evaluator), or
    {"importance_error": why} when Optuna cannot compute them (fewer than 2 finished
    trials, or a study its evaluator cannot use)."""
    import optuna

    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(finished) < 2:
        return {"importance_error": f"they need at least 2 finished trials, the study has "
                                    f"{len(finished)}"}
    found = {}
    try:
        for i, column in enumerate(columns):
            found[column] = optuna.importance.get_param_importances(
                study, evaluator=importance_evaluator(),
                target=None if len(columns) == 1 else (lambda t, i=i: t.values[i]))
    except Exception as error:  # noqa: BLE001 - a tiny or constant study: no importances
        return {"importance_error": f"Optuna could not compute them "
                                    f"({type(error).__name__}: {_first_line(error, '')})"}
    return {"importances": found}


def importance_evaluator():
    """A random forest's mean decrease in impurity, with a fixed seed so that the figure and
    the report agree. (Optuna 2.10's default, fANOVA, fails on every study with the
    scikit-learn versions that install beside it: its trees' value arrays changed shape.)"""
    import optuna

    return optuna.importance.MeanDecreaseImpurityImportanceEvaluator(seed=IMPORTANCE_SEED)


def _names(value) -> list | None:
    """A list of names from a user attribute: a list, or its command-line text "[a,b]"."""
    if isinstance(value, list):
        return value
    text = str(value).strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            return list(ast.literal_eval(text))
        except (ValueError, SyntaxError):
            return [part.strip() for part in text[1:-1].split(",") if part.strip()]
    return None


def shown(storage: str) -> str:
    """The storage URL with any password masked, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(storage).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy parses: show it as given
        return storage


def _first_line(error: Exception, storage: str) -> str:
    """The error's first line, with the URL's password (if any) masked."""
    from sqlalchemy.engine import make_url

    lines = str(error).strip().splitlines()
    text = lines[0].rstrip(".") if lines else type(error).__name__
    try:
        password = make_url(storage).password
    except Exception:  # noqa: BLE001
        password = None
    return text.replace(str(password), "***") if password else text


def _check_sqlite_file(storage: str) -> None:
    if not storage.startswith("sqlite:///"):
        return
    path = Path(storage.removeprefix("sqlite:///"))
    if str(path) != ":memory:" and not path.is_file():
        raise AnalysisError(
            f"Optuna database {str(path)!r} does not exist: pass the file the search wrote, "
            "e.g. --optuna sqlite:///outputs/optuna.db.")
