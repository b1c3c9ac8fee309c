"""Pretrain one grid cell per Hydra job: `python run.py -m objective=mlm,mlm_nsp masking=static,dynamic`."""

import logging
import sys

import hydra
from omegaconf import DictConfig

log = logging.getLogger("run")


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from ablations.config import ConfigError
    from ablations.runner import run_cell

    try:
        run_cell(cfg)
    except ConfigError as err:
        log.error("%s", err)
        sys.exit(2)


if __name__ == "__main__":
    main()
