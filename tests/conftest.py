import copy
import functools
import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


def pytest_collection_modifyitems(items):
    """Every test that runs run.py in a subprocess (or reads a grid that did) is slow: `-m "not slow"` is the
    in-process inner loop."""
    for item in items:
        function = getattr(item, "function", None)
        uses = set(getattr(item, "fixturenames", ()))
        if function and ({"grid", "ddp_cell"} & uses or "run_py(" in inspect.getsource(function)
                         or "killed_run(" in inspect.getsource(function)):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    """No test reaches a W&B server or the Hub: W&B writes offline runs under the test's tmp folder."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.setenv("WANDB_SILENT", "true")


def make_cfg(*overrides: str, root: Path | None = None):
    """The config run.py composes from these overrides. Each distinct composition runs once per session (Hydra takes
    about a tenth of a second for one, and the tests ask for the same few hundreds of times); every caller gets its
    own copy, with paths.root set as the override would set it."""
    cfg = copy.deepcopy(_composed(overrides))
    if root:
        cfg.paths.root = str(root)
    return cfg


@functools.lru_cache(maxsize=None)
def _composed(overrides: tuple[str, ...]):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def run_py(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """run.py in a subprocess, as a user runs it (a fresh process per call, Hydra's real launcher)."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


# The default grid, shrunk to a test's budget: less pretraining data and tokens, smaller GLUE sets.
SMALL = ["data.sources.synthetic.num_documents=60", "schedule.total_tokens=131072", "trainer.log_every_steps=8",
         "glue.seeds=[1,2]", "glue.train_size=300", "glue.dev_size=200", "glue.protocol.epochs=2", "rc.tasks=[]"]
# One thread per process, so a cell's float sums are the same whether it ran alone or in the grid, on any machine.
ONE_THREAD = "trainer.threads=1"
# Reading comprehension as the default grid runs it (SQuAD 2.0), shrunk: for the tests that check that stage.
RC_SMALL = ["rc.tasks=[squad20]", "rc.seeds=[1]", "rc.train_size=200", "rc.dev_size=100", "rc.protocol.epochs=1"]


def killed_run(args: list[str], root: Path, cwd: Path, until, timeout: float = 300) -> None:
    """run.py started, then its whole process tree SIGKILLed as soon as until(root) holds (a checkpoint exists)."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    job = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    while not until(root) and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()


def leet(run_dir, *flags):
    """An offline W&B run read back with W&B's own reader."""
    out = subprocess.run(["wandb", "leet", "inspect", *flags, "--json", str(run_dir)], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out) if "--summary" in flags else [json.loads(line) for line in out.splitlines()]


def wandb_history(root: Path, run_id: str) -> list[dict]:
    """The history rows of every offline part of a run (a resumed run has one part per process), without W&B's own
    keys (_step, _runtime: they differ between parts). A part killed before W&B wrote its first record holds none
    (W&B's reader refuses it)."""
    rows = []
    for part in root.glob(f"wandb/offline-run-*-{run_id}"):
        try:
            rows += [{k: v for k, v in r["history"]["item"].items() if not k.startswith("_")}
                     for r in leet(part) if r.get("type") == "history"]
        except subprocess.CalledProcessError:
            pass
    return rows


@pytest.fixture(scope="session")
def grid(tmp_path_factory):
    """`python run.py -m objective=mlm,mlm_nsp masking=static,dynamic`, run once for every test that reads it."""
    root = tmp_path_factory.mktemp("grid")
    result = run_py("-m", "objective=mlm,mlm_nsp", "masking=static,dynamic", *SMALL, *RC_SMALL, ONE_THREAD,
                    f"paths.root={root}", f"logger.dir={root}", f"hydra.sweep.dir={root}/sweep", cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    return root, result


def system_tool(*names: str) -> str:
    """A system program a test needs (Chromium, pdflatex, SLURM's daemons). Skipped where it is absent, except
    under REQUIRE_SYSTEM_TOOLS=1, which .ci/run sets once it has installed them: there a missing tool fails."""
    for name in names:
        if found := shutil.which(name):
            return found
    if os.environ.get("REQUIRE_SYSTEM_TOOLS") == "1":
        pytest.fail(f"{' or '.join(names)} is not installed, though .ci/run installed the system tools")
    pytest.skip(f"{' or '.join(names)} is not installed (.ci/run installs it)")
