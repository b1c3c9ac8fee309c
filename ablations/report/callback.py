"""A Hydra callback: when a multirun ends, its sweep folder gets the report of the cells its jobs ran."""

import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class WriteReport(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from ablations.report import build

        sweep = Path(config.hydra.sweep.dir)
        try:  # every job folder links to its cell; a report that cannot be built never fails the finished grid
            log.info("report: %s", build(str(sweep), sweep / "report"))
        except Exception:
            log.exception("report: could not be built from %s; run python -m ablations.report --source %s", sweep,
                          sweep)
