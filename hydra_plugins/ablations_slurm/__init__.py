"""hydra/launcher=slurm: submitit's SLURM launcher, but a grid waits for every job, and a job that ends without a
result (scancel, killed for memory or time, its node lost) is recorded as failed in its folder, with its SLURM state,
for GridEnd to name. The plugin's own launch stops the grid at the first such job, before GridEnd and while later
jobs still run. (Hydra loads launchers from the hydra_plugins package only.)"""

import json
from pathlib import Path

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import OmegaConf, open_dict

from ablations.grid import OUTCOME


class Slurm(SlurmLauncher):
    def launch(self, job_overrides, initial_job_idx):
        import submitit

        executor = submitit.AutoExecutor(cluster="slurm", folder=self.params["submitit_folder"],
                                         slurm_max_num_timeout=self.params["max_num_timeout"])
        queue_keys = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in queue_keys else f"slurm_{k}": v for k, v in self.params.items()
                                      if k not in ("submitit_folder", "max_num_timeout")})
        Path(self.config.hydra.sweep.dir).mkdir(parents=True, exist_ok=True)
        nums = range(initial_job_idx, initial_job_idx + len(job_overrides))
        jobs = executor.map_array(self, [list(o) for o in job_overrides], ["hydra.sweep.dir"] * len(nums), nums,
                                  [f"job_id_for_{n}" for n in nums], [Singleton.get_state()] * len(nums))
        returns = []
        for job, overrides, num in zip(jobs, job_overrides, nums):
            try:
                returns.append(job.results()[0])
            except submitit.core.utils.UncompletedJobError:
                self._record_failed(list(overrides), num, f"SLURM job {job.job_id} ended without a result "
                                                          f"({job.state})")
                returns.append(JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED))  # a failed cell
        return returns

    def _record_failed(self, overrides: list[str], num: int, error: str) -> None:
        """What run.py records for a cell that failed, in the folder the job would have written it to."""
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(cfg):
            cfg.hydra.job.num = num
        folder = Path(cfg.hydra.sweep.dir) / str(cfg.hydra.sweep.subdir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / OUTCOME).write_text(json.dumps({"status": "failed", "error": error, "overrides": overrides}))
