"""Compose the project's config through Hydra's compose API, as the CLI would."""

from hydra import compose, initialize_config_dir

from conftest import REPO
from highway_study.config import register_configs


def compose_config(*overrides):
    register_configs()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))
