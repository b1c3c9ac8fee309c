import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    """No test reaches a W&B server or the Hub: W&B writes offline runs under the test's tmp folder."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.setenv("WANDB_SILENT", "true")


def make_cfg(*overrides: str, root: Path | None = None):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        extra = [f"paths.root={root}"] if root else []
        return compose("config", overrides=[*overrides, *extra])


def run_py(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """run.py in a subprocess, as a user runs it (a fresh process per call, Hydra's real launcher)."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
