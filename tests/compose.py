"""Compose the project's config through Hydra's compose API, as the CLI would."""

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode

from conftest import REPO
from highway_study.config import register_configs


def compose_config(*overrides):
    register_configs()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def compose_multirun(*overrides):
    """The config a sweep (`-m`) starts from, hydra node included: the plain overrides applied,
    the sweep overrides (`depth=1,2`, `interval(...)`) left to the sweeper, as the CLI does."""
    register_configs()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return GlobalHydra.instance().hydra.compose_config(
            "config", list(overrides), run_mode=RunMode.MULTIRUN, with_log_configuration=False)
