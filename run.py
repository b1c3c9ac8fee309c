"""One grid cell per Hydra job: `python run.py -m objective=mlm,mlm_nsp masking=static,dynamic`."""

import logging
import sys
import warnings

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

log = logging.getLogger("run")
# Lightning 2.6 calls a torch pytree API that torch 2.13 deprecates, once per fit: noise in every cell's log.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from ablations.config import ConfigError, FineTuningFailed
    from ablations.grid import dry_run, record

    try:
        if cfg.dry_run:
            status, cost = dry_run(cfg)
            record(status, extra=cost)
        else:
            from ablations.runner import check_finished, run_cell  # torch, Lightning, transformers: seconds to import

            results = run_cell(cfg)
            check_finished(cfg, results)
            record(results["status"])
    except Exception as err:  # a cell that got that far has written results.json with status failed
        if isinstance(err, (ConfigError, FineTuningFailed)):  # a failed task's traceback is in the log already
            log.error("%s", err)
        else:
            log.exception("cell failed")
        record("failed", f"{type(err).__name__}: {err}")
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            sys.exit(2 if isinstance(err, ConfigError) else 1)
        # in a grid the other cells still run; the grid's summary names this one and its exit status is 1


if __name__ == "__main__":
    main()
