"""The population launcher as Hydra sees it (`hydra/launcher=population`).

Hydra accepts launchers only from its `hydra_plugins` namespace, so pyproject.toml installs
this folder as hydra_plugins.highway_study_population; the work is done by
highway_study.runtime.population.
"""

from __future__ import annotations

from hydra.plugins.launcher import Launcher


class PopulationLauncher(Launcher):
    """Trains a sweep's jobs of one shape as populations, the others one by one."""

    def __init__(self, groups: int | None = None, min_members: int = 2) -> None:
        super().__init__()
        from highway_study.runtime.population import check_launcher_options

        check_launcher_options(groups, min_members)  # also when built without the sweep checks
        self.groups = groups
        self.min_members = min_members
        self.config = self.task_function = self.hydra_context = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.config, self.task_function, self.hydra_context = config, task_function, hydra_context

    def launch(self, job_overrides, initial_job_idx):
        from highway_study.runtime.population import launch

        return launch(self, job_overrides, initial_job_idx)

