"""hydra/launcher=slurm on a real single-node SLURM cluster (tests/slurm_cluster.py, started once for this module):
a grid's cells run as SLURM jobs that ask for no GPU under trainer=cpu; a cell requeued mid-training (`scontrol
requeue`, as a pre-emption does) resumes from its checkpoint and ends as the uninterrupted cell did; a job cancelled
from outside (`scancel`) fails the grid, whose error names it."""

import json
import os
import signal
import subprocess
import sys
import zipfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import ROOT, SMALL, system_tool
from slurm_cluster import slurm_cluster, wait_until

PRETRAIN = [*SMALL, "stage=pretrain", "logger=none"]


@pytest.mark.parametrize("overrides,gpus,cpus", [
    (["trainer=cpu"], None, 1), (["trainer=gpu"], 1, 8), (["trainer=ddp", "trainer.devices=4"], 4, 8)])
def test_the_slurm_launcher_asks_for_gpus_only_when_the_trainer_uses_them(overrides, gpus, cpus):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=slurm", *overrides], return_hydra_config=True)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert (launcher["gpus_per_node"], launcher["cpus_per_task"]) == (gpus, cpus)
    assert launcher["tasks_per_node"] == cfg.trainer.devices


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """The cluster, up for this module's tests; SLURM_CONF points every SLURM command, and the grids' jobs, at it."""
    for tool in ("munged", "mariadb-install-db", "my_print_defaults", "mariadbd", "slurmdbd", "slurmctld", "slurmd",
                 "sbatch"):
        system_tool(tool)
    if os.geteuid() != 0:
        reason = "the SLURM test cluster runs its daemons as root"
        if os.environ.get("REQUIRE_SYSTEM_TOOLS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    with slurm_cluster(tmp_path_factory.mktemp("slurm")) as cluster, pytest.MonkeyPatch.context() as env:
        env.setenv("SLURM_CONF", cluster.env["SLURM_CONF"])
        yield cluster


@contextmanager
def launched(root: Path, *overrides: str):
    """`run.py -m ... hydra/launcher=slurm` started in the background (output in root/grid.log); stopped if the
    test ends before it does."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "grid.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "run.py"), "-m", *overrides, *PRETRAIN, "hydra/launcher=slurm",
             f"paths.root={root}", f"hydra.sweep.dir={root}/sweep"],
            cwd=root, env={**os.environ, "HYDRA_FULL_ERROR": "0"}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def ended(process: subprocess.Popen, root: Path, timeout: float = 240) -> str:
    process.wait(timeout)
    return (root / "grid.log").read_text()


def job_ids(root: Path) -> list[str]:
    """The grid's SLURM jobs in the order of its cells, once submitted: array tasks 12_0, 12_1, ...; a one-cell
    grid's job is not an array."""
    submitted = (root / "sweep" / ".submitit").glob("*/*_submitted.pkl")
    return sorted((p.name.removesuffix("_submitted.pkl") for p in submitted), key=lambda i: int(i.rpartition("_")[2]))


def cells(root: Path) -> dict[int, dict]:
    """{seed: results.json} of the grid's cells."""
    return {r["config"]["seed"]: r for r in (json.loads(p.read_text()) for p in root.glob("cells/*/results.json"))}


@pytest.fixture(scope="module")
def slurm_grid(slurm, tmp_path_factory):
    """`-m seed=0,1` through the launcher, uninterrupted."""
    root = tmp_path_factory.mktemp("slurm_grid")
    with launched(root, "seed=0,1") as process:
        output = ended(process, root)
    return root, process.returncode, output


@pytest.mark.slow
def test_a_grid_runs_its_cells_as_slurm_jobs_that_ask_for_no_gpu(slurm, slurm_grid):
    root, returncode, output = slurm_grid
    assert returncode == 0, output[-3000:]
    assert "grid: 2 cells, 0 failed" in output
    results = cells(root)
    assert sorted(results) == [0, 1] and all(r["status"] == "ok" for r in results.values())
    for job in job_ids(root):
        [record] = slurm.accounted(job)
        assert record["State"] == "COMPLETED"
        assert "cpu=1," in record["ReqTRES"] and "gpu" not in record["ReqTRES"]  # GresTypes=gpu: one would refuse it


@pytest.mark.slow
def test_a_requeued_cell_resumes_from_its_checkpoint_and_ends_as_the_uninterrupted_one(slurm, slurm_grid, tmp_path):
    """Requeued right after its first whole checkpoint (step 8 of 65); started again at once (a requeued job waits
    for its begin time, by default two minutes), it resumes and ends with the uninterrupted cell's numbers."""
    with launched(tmp_path, "seed=0", "trainer.checkpoint_every_steps=8") as process:
        wait_until(lambda: _whole_checkpoint(tmp_path) or process.poll() is not None, "a checkpoint", 180)
        assert process.poll() is None, ended(process, tmp_path)[-3000:]
        assert not list(tmp_path.glob("cells/*/results.json")), "requeued too late: the cell had finished"
        [job] = job_ids(tmp_path)
        slurm.run("scontrol", "requeue", job)
        wait_until(lambda: slurm.jobs().get(job) == "PENDING", "the requeued job pending")
        slurm.run("scontrol", "update", f"jobid={job}", "StartTime=now")
        output = ended(process, tmp_path)
    assert process.returncode == 0, output[-3000:]
    assert [r["State"] for r in slurm.accounted(job)] == ["REQUEUED", "COMPLETED"]
    assert "resuming from" in (tmp_path / "sweep" / "0" / "run.log").read_text()
    resumed, reference = cells(tmp_path)[0], cells(slurm_grid[0])[0]
    assert resumed["status"] == "ok" and resumed["steps"] == reference["steps"]
    assert resumed["curve"] == reference["curve"]
    assert resumed["tokens_seen"] == reference["tokens_seen"]
    assert resumed["mask_fingerprints"] == reference["mask_fingerprints"]
    assert resumed["metrics"]["val/mlm_loss"] == pytest.approx(reference["metrics"]["val/mlm_loss"], rel=1e-5)


@pytest.mark.slow
def test_a_cancelled_job_fails_the_grid_which_names_it(slurm, tmp_path):
    """scancel kills the job (submitit ignores SIGTERM; SIGKILL follows KillWait), so the cell records nothing: the
    launcher waits for every job, records the cancelled one as failed with its SLURM state, and the grid's end names
    it, the other cell finished, exit status 1."""
    with launched(tmp_path, "seed=0,1") as process:
        wait_until(lambda: len(job_ids(tmp_path)) == 2, "submission")
        job = job_ids(tmp_path)[0]
        wait_until(lambda: slurm.jobs().get(job) == "RUNNING", f"job {job} running", 120)
        slurm.run("scancel", job)
        output = ended(process, tmp_path)
    assert process.returncode == 1, output[-3000:]
    assert "grid: 2 cells, 1 failed" in output and "failed: seed=0" in output and "CANCELLED" in output
    assert slurm.accounted(job)[-1]["State"].startswith("CANCELLED")
    assert {seed: r["status"] for seed, r in cells(tmp_path).items()} == {1: "ok"}, output[-3000:]


def _whole_checkpoint(root: Path) -> bool:
    """A checkpoint written to its end (the grid is requeued after one, so the resume has one to load)."""
    for path in root.glob("cells/*/checkpoints/*.ckpt"):
        try:
            with zipfile.ZipFile(path) as archive:
                if archive.testzip() is None:
                    return True
        except (zipfile.BadZipFile, OSError):
            pass
    return False
