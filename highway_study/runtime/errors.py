"""Errors Hydra raises before our task runs (composing the config, parsing overrides,
instantiating the sweeper), as the one sentence docs/usage.md promises for a bad value.

Hydra itself prints such errors over several lines (a traceback for some) and exits 1.
`__main__` lets them reach it (HYDRA_FULL_ERROR) and prints `describe(error)` instead,
with exit code 2, like every other bad config value.
"""

from __future__ import annotations

import re

from hydra.errors import (ConfigCompositionException, MissingConfigException,
                          OverrideParseException)

from highway_study.config import ConfigError, unknown_key
from highway_study.runtime.storage import StorageError

_TYPES = {"Integer": "use an integer", "Float": "use a number",
          "Boolean": "use true or false"}


def describe(error: BaseException) -> str | None:
    """One sentence for a config error from Hydra or the sweep's set-up; None for any other."""
    for cause in _chain(error):  # our own one-sentence errors, wherever Hydra wrapped them
        if isinstance(cause, ConfigError):
            return f"Invalid config: {cause}"
        if isinstance(cause, StorageError):
            return str(cause)
    if isinstance(error, MissingConfigException):
        return _missing(error)
    if isinstance(error, OverrideParseException):
        return (f"Invalid config: an override cannot be parsed ({_first_line(error)}): see "
                "https://hydra.cc/docs/advanced/override_grammar/basic/.")
    if isinstance(error, ConfigCompositionException):
        return _composition(error)
    return None


def _composition(error: ConfigCompositionException) -> str:
    message = str(error)
    cause = error.__cause__
    override = re.match(r"Error merging override (.+)", message)
    if override:
        detail = _first_line(cause) if cause is not None else message
        kind = re.search(r"could not be converted to (\w+)", detail)
        advice = _TYPES.get(kind.group(1), detail) if kind else detail
        return f"Invalid config: {override.group(1)} is not allowed: {advice.rstrip('.')}."
    ambiguous = re.match(r"Ambiguous value for argument '([^']+)'", message)
    if ambiguous:  # a sweep's values without -m: say what Hydra's second line said
        return (f"Invalid config: {ambiguous.group(1)} gives several values, which only a "
                f"sweep takes: add -m (--multirun), or give one value.")
    unknown = re.match(r"Could not override '([^']+)'", message)
    if unknown:
        return f"Invalid config: {unknown_key(unknown.group(1))}"
    return f"Invalid config: {_first_line(error)}" + (
        f" ({_first_line(cause)})." if cause is not None else "")


def _missing(error: MissingConfigException) -> str:
    """`model=resnet`: a config group option that does not exist."""
    missing = error.missing_cfg_file or ""
    group, _, name = missing.rpartition("/")
    if group and error.options:
        return (f"Invalid config: {group.replace('/', '.')}={name} is not allowed: use one of "
                f"{', '.join(error.options)}.")
    return f"Invalid config: {_first_line(error)}."


def _chain(error: BaseException):
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _first_line(error) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
