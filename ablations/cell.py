"""A grid cell's identity (a hash of its science settings plus seed) and its results.json.

The id names the cell folder, the results path and the W&B run id, so a rerun finds the same cell
and a resumed cell continues its run. Implementation settings (trainer, logger, paths) never enter it.
"""

import json
import logging
import os
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from filelock import FileLock, Timeout
from omegaconf import DictConfig, OmegaConf

from ablations.config import ConfigError
from ablations.data.cache import stable_hash

log = logging.getLogger(__name__)

SCIENCE = ("objective", "input_format", "masking", "schedule", "data", "model", "tokenizer", "seq_len", "seed")
SCHEMA_VERSION = 2  # 2: GLUE results keyed by fingerprint, budgets in real tokens
LIBRARIES = ("torch", "pytorch-lightning", "transformers", "tokenizers", "hydra-core", "wandb", "numpy")


def science(cfg: DictConfig) -> dict:
    return {key: OmegaConf.to_container(cfg, resolve=True)[key] for key in SCIENCE}


@dataclass(frozen=True)
class Cell:
    id: str
    name: str
    group: str
    factors: dict
    dir: Path
    arm_id: str  # the science settings without the seed: cells of one arm are replicates, whatever their factors say

    @classmethod
    def of(cls, cfg: DictConfig, root: Path) -> "Cell":
        factors = {
            "objective": cfg.objective.name,
            "masking": cfg.masking.name,
            "input_format": cfg.input_format.name,
            "schedule": cfg.schedule.name,
            "data": cfg.data.name,
            "data_size": cfg.data.size,
            "model": cfg.model.name,
            "tokenizer": cfg.tokenizer.name,
            "seed": cfg.seed,
        }
        data = factors["data"] if factors["data_size"] is None else f"{factors['data']}{factors['data_size']}"
        group = "-".join([factors["objective"], factors["masking"], factors["input_format"], factors["schedule"], data])
        settings = science(cfg)
        arm_id = stable_hash({k: v for k, v in settings.items() if k != "seed"})
        return cls(stable_hash(settings), f"{group}-s{cfg.seed}", group, factors, Path(root) / "cells" / stable_hash(settings),
                   arm_id)

    @classmethod
    def for_checkpoint(cls, cfg: DictConfig, root: Path) -> "Cell":
        """A fine-tuning-only cell for model.pretrained: a checkpoint folder or Hub id, or `random` (this
        config's model and tokenizer, untrained: the no-pretraining baseline)."""
        source = cfg.model.pretrained
        if source == "random":
            name, identity = f"random-init-{cfg.model.name}-{cfg.tokenizer.name}-{cfg.data.name}", science(cfg)
        else:
            folder = Path(source).expanduser()
            source = str(folder.resolve()) if folder.exists() else source
            name, identity = f"pretrained-{Path(source).name}", {"pretrained": source}
        cell_id = stable_hash(identity)
        return cls(cell_id, name, name, {"pretrained": source}, Path(root) / "cells" / cell_id, cell_id)

    @property
    def results_path(self) -> Path:
        return self.dir / "results.json"

    @contextmanager
    def lock(self):
        """One process runs this cell at a time (two grids on one paths.root): the second waits, then finds it
        finished. Taken by rank 0 only: the other ranks of a DDP cell are its own process tree."""
        from pytorch_lightning.utilities import rank_zero_only

        if rank_zero_only.rank != 0:
            yield
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.dir / "cell.lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            log.info("cell %s (%s) is being run by another process; waiting for it", self.id, self.name)
            lock.acquire()
        try:
            yield
        finally:
            lock.release()


def read_results(path: Path) -> dict:
    """A cell's results.json, {} when there is none. One that cannot be read (cut short by hand, a full disk) is
    moved aside, never trusted, and the cell runs again (resuming from its checkpoints); one of another schema
    version is refused rather than overwritten."""
    try:
        results = json.loads(path.read_bytes())
        if not isinstance(results, dict):
            raise ValueError(f"a JSON {type(results).__name__}, not an object")
    except FileNotFoundError:
        return {}
    except ValueError as err:  # UnicodeDecodeError too
        aside = path.with_name(f"{path.name}.unreadable-{int(time.time())}")
        os.replace(path, aside)
        log.warning("%s is not a results object (%s): moved to %s; the cell runs again", path, err, aside.name)
        return {}
    if results.get("schema_version") != SCHEMA_VERSION:
        raise ConfigError(f"{path}: schema_version {results.get('schema_version')}, this harness reads and writes "
                          f"{SCHEMA_VERSION}; move the cell folder away to run it here again")
    return results


def provenance() -> dict:
    """Git SHA, library versions, host and process, so a number can be traced to the code and run that made it."""
    here = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=10).stdout.strip() or None
    except OSError:
        sha = None
    return {"git_sha": sha, "versions": {lib: metadata.version(lib) for lib in LIBRARIES},
            "host": socket.gethostname(), "pid": os.getpid()}


def write_results(path: Path, results: dict) -> None:
    write_atomic(path, json.dumps({"schema_version": SCHEMA_VERSION, **results}, indent=2, default=str))


def write_atomic(path: Path, text: str) -> None:
    """A reader sees the old file or the whole new one, never a partial write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
