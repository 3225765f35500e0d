"""Reading an Optuna study (the hparams search's SQLite storage) into a tidy trials table.

Uses Optuna's own API (get_all_study_summaries, load_study). An sqlite URL whose file does
not exist is refused before Optuna sees it, because Optuna would create an empty database.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd

from analysis.collect import AnalysisError

SEARCHED = ("depth", "carry_bias")


def load_trials(storage: str, study_name: str | None = None) -> tuple[str, pd.DataFrame]:
    """(study name, one row per finished trial: number, value, and every searched param)."""
    import optuna

    _check_sqlite_file(storage)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        summaries = optuna.get_all_study_summaries(storage=storage)
    except Exception as error:  # noqa: BLE001 - any storage error is the user's URL or file
        raise AnalysisError(
            f"Cannot read Optuna storage {shown(storage)!r}: {_first_line(error, storage)}."
        ) from None
    names = [s.study_name for s in summaries]
    if not names:
        raise AnalysisError(f"Optuna storage {shown(storage)!r} holds no study.")
    if study_name is None:
        # The newest study, as a sweep that is re-run creates or extends the latest one.
        newest = max(summaries, key=lambda s: s.datetime_start or datetime.min)
        study_name = newest.study_name
    elif study_name not in names:
        raise AnalysisError(
            f"Optuna study {study_name!r} is not in {shown(storage)!r}: use one of "
            f"{', '.join(names)}.")
    study = optuna.load_study(study_name=study_name, storage=storage)
    return study_name, trials_table(study)


def trials_table(study) -> pd.DataFrame:
    """Finished trials with a value; params named as searched (e.g. optimizer.learning_rate)."""
    frame = study.trials_dataframe(attrs=("number", "value", "state", "params"))
    frame = frame.rename(columns=lambda c: c.removeprefix("params_"))
    missing = [p for p in SEARCHED if p not in frame]
    if missing:
        params = ", ".join(c for c in frame if c not in ("number", "value", "state"))
        raise AnalysisError(f"Optuna study {study.study_name!r} did not search "
                            f"{' and '.join(missing)}: its parameters are {params or 'none'}.")
    frame = frame[(frame["state"] == "COMPLETE") & frame["value"].notna()]
    for column in SEARCHED:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame.dropna(subset=list(SEARCHED)).reset_index(drop=True)


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
