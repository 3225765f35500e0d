"""Where an Optuna search keeps its trials, read from the environment at use time.

The search config names this factory instead of a URL string
(`hydra.sweeper.storage: {_target_: highway_study.runtime.storage.optuna_storage}`), so Hydra saves
only the factory's name: the URL and password never reach multirun.yaml, .hydra/*.yaml,
or the sweeper's log line (which prints the storage object, not its URL).

- `HIGHWAY_STUDY_OPTUNA_URL`: a SQLAlchemy URL, e.g. `postgresql://optuna@db-host/highway`;
  unset means the default SQLite file `outputs/optuna.db` (relative to the working dir).
- `HIGHWAY_STUDY_OPTUNA_PASSWORD`: the database password, merged into the URL in memory.
  (libpq's own `PGPASSWORD` or `~/.pgpass` work too, since psycopg2 reads them.)
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

URL_ENV = "HIGHWAY_STUDY_OPTUNA_URL"
PASSWORD_ENV = "HIGHWAY_STUDY_OPTUNA_PASSWORD"
DEFAULT_URL = "sqlite:///outputs/optuna.db"


class StorageError(ValueError):
    """A storage URL that cannot be used; the message is one sentence, without the password."""


def storage_url(default_url: str = DEFAULT_URL) -> str:
    """The storage URL from the environment (password included), or `default_url`."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    raw = os.environ.get(URL_ENV) or default_url
    try:
        url = make_url(raw)
    except ArgumentError:
        raise StorageError(
            f"{URL_ENV} is not a database URL: use e.g. postgresql://user@host/db "
            "or sqlite:///outputs/optuna.db."
        ) from None
    password = os.environ.get(PASSWORD_ENV)
    if password:
        url = url.set(password=password)
    rendered = url.render_as_string(hide_password=False)
    database = sqlite_file(rendered)
    if database is not None:
        try:
            database.parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            raise StorageError(unwritable(database)) from None
    return rendered


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names; None for other databases, memory and `file:` URIs."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.query.get("uri"):
        return None
    return None if parsed.database in (None, "", ":memory:") else Path(parsed.database)


def unwritable(database) -> str:
    """The one sentence for a database the search cannot write."""
    return (f"The Optuna database {database} is not writable (SQLite needs to write the file "
            "and its folder): make both writable, or give the search another storage "
            "(hydra.sweeper.storage or $HIGHWAY_STUDY_OPTUNA_URL).")


def check_writable(url: str) -> None:
    """StorageError when the search could not write its SQLite file: Optuna would fail on
    its first write with a long traceback (and, run as root, only SQLite itself refuses)."""
    database = sqlite_file(url)
    if database is None:
        return
    existing = database if database.exists() else database.parent
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    folder = existing if existing.is_dir() else existing.parent
    if existing.is_file() and not os.access(existing, os.W_OK) \
            or not os.access(folder, os.W_OK | os.X_OK):
        raise StorageError(unwritable(database))


@contextmanager
def refused_writes_named(url: str):
    """Turn SQLite's refusal to write (a read-only file or folder, however Optuna wraps it)
    into StorageError naming the database."""
    try:
        yield
    except Exception as error:  # noqa: BLE001 - only a refused write is translated
        if not _refused_write(error):
            raise
        where = (sqlite_file(url) or describe(url)) if url else "hydra.sweeper.storage names"
        raise StorageError(unwritable(where)) from None


def _refused_write(error: BaseException) -> bool:
    import sqlite3

    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, sqlite3.OperationalError) and any(
                words in str(error) for words in ("readonly", "unable to open database file")):
            return True
        error = error.__cause__ or error.__context__
    return False


def describe(url: str) -> str:
    """The URL with its password masked, for log lines."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def optuna_storage(default_url: str = DEFAULT_URL, heartbeat_seconds: int = 60):
    """An Optuna RDB storage for the configured URL (what hydra.sweeper.storage instantiates),
    whose trials never stay RUNNING after their worker is gone (runtime.trials)."""
    from highway_study.runtime.trials import TrialKeepingStorage

    url = storage_url(default_url)
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    return TrialKeepingStorage(url, heartbeat_seconds=heartbeat_seconds,
                               engine_kwargs=engine_kwargs)


def create_study(study_name: str, directions=("maximize",)) -> None:
    """Create the tables and the study once, before several workers start at the same moment
    (two workers creating a fresh database at once can race on its tables). `directions`:
    one per objective, as the search's hydra.sweeper.direction gives them."""
    import optuna

    optuna.create_study(study_name=study_name, storage=optuna_storage(),
                        directions=list(directions), load_if_exists=True)


def main(argv=None) -> int:
    """`python -m highway_study.runtime.storage STUDY_NAME [DIRECTION ...]`: create the study
    before workers start; a two-objective search (hparams_search=pareto_optuna) names its two
    directions (`maximize maximize`), a one-objective study needs none.

    A URL that is not one, names no installed database driver, or reaches no database ends
    in one sentence (exit 2 for the URL, 1 for the database), without the password.
    """
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    argv = sys.argv[1:] if argv is None else argv
    bad = [d for d in argv[1:] if d not in ("minimize", "maximize")]
    if not argv or bad:
        print("usage: python -m highway_study.runtime.storage STUDY_NAME [DIRECTION ...]  "
              f"(creates it in the database ${URL_ENV} names, default {DEFAULT_URL}; each "
              "DIRECTION minimize or maximize, one per objective, default maximize)",
              file=sys.stderr)
        return 2
    try:
        url = storage_url()
        create_study(argv[0], argv[1:] or ("maximize",))
    except StorageError as error:
        print(error, file=sys.stderr)
        return 2
    except (SQLAlchemyError, ImportError) as error:  # no driver, no server, bad credentials
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        if os.environ.get(PASSWORD_ENV):
            reason = reason.replace(os.environ[PASSWORD_ENV], "***")
        print(f"The Optuna database {describe(url)} (from ${URL_ENV}) cannot be used: "
              f"{type(error).__name__}: {reason.rstrip('.')}.", file=sys.stderr)
        return 2 if isinstance(error, ArgumentError) else 1  # 2: the URL itself is wrong
    print(f"study {argv[0]!r} ready in {describe(url)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
