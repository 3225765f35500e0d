"""Populations on a cluster (`hydra/launcher=population_slurm`, `population_local`).

The sweep batch is cut into groups exactly as `hydra/launcher=population` cuts it (one per
shape, one per job that trains alone), and each group is one submitit task: a Slurm array
task trains a whole population, so a cluster sweep gains what a population gains on one
machine. Inside the task the group goes through the population launcher's own code
(`runtime.population.launch_indexed`), so every run keeps its folder, .hydra/ files, record
and JobReturn. A task that reaches its time limit is requeued by submitit with the same
group and resumes from the members' last checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.core.singleton import Singleton
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher

log = logging.getLogger("highway_study")

# Options submitit's executor takes at creation rather than as parameters.
_INIT_KEYS = ("max_num_timeout",)
_EXECUTOR_KEYS = ("submitit_folder",) + _INIT_KEYS
# Options every submitit executor understands without its cluster's prefix.
_SHARED_KEYS = ("timeout_min", "cpus_per_task", "gpus_per_node", "tasks_per_node",
                "mem_gb", "nodes", "name", "stderr_to_stdout")


class _PopulationSubmititLauncher(BaseSubmititLauncher):
    """Submits each group of a sweep batch as one submitit task."""

    def __init__(self, groups: int | None = None, min_members: int = 2, **params) -> None:
        super().__init__(**params)
        from highway_study.runtime.population import check_launcher_options

        check_launcher_options(groups, min_members)  # also when built without the sweep checks
        self.groups = groups
        self.min_members = min_members

    def __call__(self, indexed_overrides, singleton_state):  # runs in the cluster task
        from highway_study.runtime.population import launch_indexed

        Singleton.set_state(singleton_state)
        return launch_indexed(self, indexed_overrides)

    def executor(self):
        """submitit's executor for this cluster, with the config's parameters."""
        import submitit

        executor = submitit.AutoExecutor(
            cluster=self._EXECUTOR, folder=self.params["submitit_folder"],
            **{f"{self._EXECUTOR}_{k}": self.params[k] for k in _INIT_KEYS if k in self.params})
        executor.update_parameters(**{
            k if k in _SHARED_KEYS else f"{self._EXECUTOR}_{k}": v
            for k, v in self.params.items() if k not in _EXECUTOR_KEYS})
        return executor

    def launch(self, job_overrides, initial_job_idx):
        from highway_study.runtime.population import job_groups

        groups = job_groups(self, job_overrides, initial_job_idx)
        executor = self.executor()
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        for group in groups:
            log.info("task of %d run(s): jobs %s", len(group), [index for _, index in group])
        state = Singleton.get_state()
        tasks = executor.map_array(self, groups, [state] * len(groups))
        returns = {}
        for group, task in zip(groups, tasks):
            for (_, index), job_return in zip(group, task.results()[0]):
                returns[index] = job_return
        return [returns[initial_job_idx + i] for i in range(len(job_overrides))]


class PopulationSlurmLauncher(_PopulationSubmititLauncher):
    _EXECUTOR = "slurm"


class PopulationLocalLauncher(_PopulationSubmititLauncher):
    """The same on this machine, through submitit's local executor (tests the cluster path)."""

    _EXECUTOR = "local"
