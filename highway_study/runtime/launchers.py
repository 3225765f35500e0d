"""Which launcher a sweep config names, by its class rather than by its name: a launcher
subclassed or renamed keeps its behaviour (threads, progress, checks)."""

from __future__ import annotations


def launcher_class(launcher_cfg) -> type | None:
    """The class a launcher config's `_target_` names (None: none, or not importable)."""
    from hydra.utils import get_class

    target = str((launcher_cfg or {}).get("_target_", "") or "")
    if not target:
        return None
    try:
        return get_class(target)
    except Exception:  # noqa: BLE001 - a launcher that cannot be imported is Hydra's to report
        return None


def _is(launcher_cfg, module: str, name: str) -> bool:
    """Whether the launcher's class is, or derives from, module.name. Compared by name along
    its class hierarchy: Hydra's plugin scan may load a plugin module a second time, so the
    same class can exist as two objects."""
    cls = launcher_class(launcher_cfg)
    return cls is not None and any(
        base.__module__ == module and base.__qualname__ == name for base in cls.__mro__)


def is_population(launcher_cfg) -> bool:
    """A population launcher (local or on a cluster)."""
    return _is(launcher_cfg, "hydra_plugins.highway_study_population", "PopulationLauncher") \
        or _is(launcher_cfg, "hydra_plugins.highway_study_population.cluster",
               "_PopulationSubmititLauncher")


def is_submitit(launcher_cfg) -> bool:
    """A launcher whose jobs run in submitit's tasks (Slurm or local), population or not."""
    return _is(launcher_cfg, "hydra_plugins.hydra_submitit_launcher.submitit_launcher",
               "BaseSubmititLauncher")


def is_joblib(launcher_cfg) -> bool:
    return _is(launcher_cfg, "hydra_plugins.hydra_joblib_launcher.joblib_launcher",
               "JoblibLauncher")


def is_slurm(launcher_cfg) -> bool:
    """A launcher that submits to Slurm (its class's name says so, as submitit's do)."""
    cls = launcher_class(launcher_cfg)
    return is_submitit(launcher_cfg) and cls is not None and "Slurm" in cls.__name__
