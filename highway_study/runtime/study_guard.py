"""One Optuna study, one search: trials of other data, models or search spaces never join it.

The sampler learns from every trial of a study, and "best value" is taken over all of them,
so a study must only hold trials that differ in the searched parameters. Before a search
starts (`SweepChecks.on_multirun_start`), the study records what the search fixed (the
composed config without the searched keys and without keys that cannot change a result)
and its search space, as study user attributes; a later search that fixes anything else or
searches another space is refused in one sentence, before any trial is asked for.

A study's directions (one per objective) are fixed when it is made, so a search with other
directions (a two-objective search into a one-objective study) is refused too, even before
the study has trials; the study also records the names of its objectives
(record.STUDY_OBJECTIVES_ATTR), in order, for the analysis.

The default study name already says what is searched (conf/hparams_search/highway_optuna.yaml:
`depth_bias_lr_<model>_<data>`), so the documented commands for digits and MNIST use two
studies; the check catches everything the name does not spell out (setup, epochs, a
narrowed range, ...).
"""

from __future__ import annotations

import copy
import json
import logging

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from highway_study import record

log = logging.getLogger("highway_study.study")

CONFIG_ATTR = record.STUDY_CONFIG_ATTR
SPACE_ATTR = "highway_study.search_space"
OPTUNA_STUDY_LOGGER = "optuna.study.study"  # where Optuna says it reuses a study
# Keys that only say where data lives, what is logged or how fast the same maths runs:
# a study may pool trials that differ in them.
RESULT_NEUTRAL = ("tags", "data.path", "data.download", "tensorboard", "lesion_every",
                  "model.implementation", "model.streams")


class StudyMismatch(ValueError):
    """The study holds trials of another search; the message is one sentence."""


def search_space(config) -> dict[str, str]:
    """Searched key -> its Optuna distribution (as text), from hydra.sweeper.params and then
    the command line, as the sweeper reads them; a key given a fixed value there (in the
    params, or on the command line over a searched key) is recorded as `fixed VALUE`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra_plugins.hydra_optuna_sweeper._impl import (
        create_optuna_distribution_from_override as distribution,
    )

    parser = OverridesParser.create()
    params = parser.parse_overrides(
        [f"{key}={value}" for key, value in (config.hydra.sweeper.get("params") or {}).items()])
    command_line = parser.parse_overrides(list(config.hydra.overrides.task))
    space = {}
    for position, override in enumerate(params + command_line):
        key = override.key_or_group
        if override.is_sweep_override():
            space[key] = repr(distribution(override))
        elif position < len(params) or key in space:  # other fixed values are in the config
            space[key] = f"fixed {override.get_value_element_as_str()}"
    return space


def fixed_config(config, searched) -> dict:
    """The composed task config as dotted key -> value, without the searched keys (and their
    sub-keys) and the result-neutral ones."""
    task = copy.deepcopy(config)
    with read_write(task), open_dict(task):
        del task["hydra"]
    flat = _flatten(OmegaConf.to_container(task, resolve=True))
    dropped = tuple(searched) + RESULT_NEUTRAL
    return {key: value for key, value in flat.items()
            if not any(key == d or key.startswith(d + ".") for d in dropped)}


def differences(recorded: dict, current: dict, both_only: bool) -> list[str]:
    """'key (was A, now B)' for every key whose value changed; keys only one side has count
    only when `both_only` is false (a code update may add or drop config keys)."""
    keys = recorded.keys() & current.keys() if both_only else recorded.keys() | current.keys()
    return [f"{key} (was {_show(recorded.get(key))}, now {_show(current.get(key))})"
            for key in sorted(keys) if recorded.get(key) != current.get(key)]


def check_study(config) -> None:
    """Record this search's fixed config and space in its study, or raise StudyMismatch when
    the study already holds trials of another search, StorageError when its SQLite file
    cannot be written. No study name or storage: nothing to check (Optuna then makes a new
    in-memory study)."""
    sweeper = config.hydra.sweeper
    name = sweeper.get("study_name")
    if not name or sweeper.get("storage") is None:
        return
    from highway_study.runtime.storage import check_writable, refused_writes_named

    url = _url(sweeper.storage)
    if url is not None:
        check_writable(url)
    with refused_writes_named(url or ""):
        _check_study(config, name)


def _check_study(config, name: str) -> None:
    import optuna

    sweeper = config.hydra.sweeper
    storage, where = _storage(sweeper.storage)
    directions = _directions(sweeper.get("direction", "minimize"))
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweeper says it once, later
    try:
        study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True,
                                    directions=directions)
    except ValueError:  # "Cannot overwrite study direction": it exists with other directions
        study = optuna.load_study(study_name=name, storage=storage)
        had = [d.name.lower() for d in study.directions]
        raise StudyMismatch(
            f"Optuna study {name!r} in {where} was made for {len(had)} objective"
            f"{'s' if len(had) != 1 else ''} ({', '.join(had)}), but this search has "
            f"{len(directions)} ({', '.join(directions)}): give this search its own study "
            "with hydra.sweeper.study_name=NEW_NAME.") from None
    finally:
        optuna.logging.set_verbosity(verbosity)
    space = search_space(config)
    fixed = fixed_config(config, space)
    recorded_fixed = study.user_attrs.get(CONFIG_ATTR)
    recorded_space = study.user_attrs.get(SPACE_ATTR)
    trials = len(study.trials)
    if recorded_fixed is not None and trials:
        changed = (differences(recorded_fixed, fixed, both_only=True)
                   + differences(recorded_space or {}, space, both_only=False))
        if changed:
            shown = "; ".join(changed[:3]) + (f"; and {len(changed) - 3} more"
                                              if len(changed) > 3 else "")
            raise StudyMismatch(
                f"Optuna study {name!r} in {where} holds {trials} "
                f"trial{'s' if trials != 1 else ''} of another search "
                f"({shown}): give this search its own study with "
                f"hydra.sweeper.study_name=NEW_NAME, or rerun with the study's settings.")
        return
    if recorded_fixed is None and trials:
        log.warning("Optuna study %r has %d trials from before studies recorded their search; "
                    "assuming they match this one.", name, trials)
    if recorded_fixed is None and not trials:
        log.info("Optuna study %r: a new study in %s.", name, where)
        _quiet_reuse_message(name)
    study.set_user_attr(CONFIG_ATTR, fixed)
    study.set_user_attr(SPACE_ATTR, space)
    metric = config.get("optimized_metric", "best_val_accuracy")
    study.set_user_attr(record.STUDY_OBJECTIVES_ATTR,
                        list(metric) if record.is_list(metric) else [metric])


class _FreshStudyFilter(logging.Filter):
    """Drops Optuna's "Using an existing study with name 'NAME'" for a study this check has
    just created: the sweeper loads it, and the line would call a new search an old one."""

    def __init__(self, name: str):
        super().__init__()
        self.message = f"Using an existing study with name '{name}'"

    def filter(self, record) -> bool:
        return not record.getMessage().startswith(self.message)


def _quiet_reuse_message(name: str) -> None:
    logger = logging.getLogger(OPTUNA_STUDY_LOGGER)
    for old in [f for f in logger.filters if isinstance(f, _FreshStudyFilter)]:
        logger.removeFilter(old)
    logger.addFilter(_FreshStudyFilter(name))


def _url(node) -> str | None:
    """The storage's URL, read without opening it: a URL string, or the project's factory's
    (None for another factory)."""
    if not isinstance(node, DictConfig):
        return str(node)
    from highway_study.runtime.storage import DEFAULT_URL, optuna_storage, storage_url

    target = str(node.get("_target_", ""))
    if target.rpartition(".")[2] != optuna_storage.__name__:
        return None
    return storage_url(node.get("default_url", DEFAULT_URL))


def _storage(node):
    """(storage for Optuna, where it is, with any password masked)."""
    from highway_study.runtime.storage import describe

    if isinstance(node, DictConfig) and "_target_" in node:
        from hydra.utils import instantiate

        storage = instantiate(node)
    else:
        storage = str(node)
    url = getattr(storage, "url", storage)
    return storage, describe(str(url))


def _directions(direction) -> list[str]:
    values = list(direction) if isinstance(direction, (list, tuple)) or OmegaConf.is_list(
        direction) else [direction]
    return [str(getattr(value, "name", value)).lower() for value in values]


def _flatten(node, prefix: str = "") -> dict:
    if not isinstance(node, dict):
        return {prefix[:-1]: node}
    flat = {}
    for key, value in node.items():
        flat.update(_flatten(value, f"{prefix}{key}."))
    return flat


def _show(value) -> str:
    return "unset" if value is None else json.dumps(value) if not isinstance(value, str) else value
