import argparse
import logging
import sys
from pathlib import Path

import ablations.report as report
from ablations.config import ConfigError


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m ablations.report", description=report.__doc__)
    parser.add_argument("--source", required=True, help="a folder of runs (results.json), wandb:ENTITY/PROJECT, or "
                                                        "wandb-offline:DIR (offline W&B run folders)")
    parser.add_argument("--out", required=True, type=Path, help="folder for report.md/.tex/.html, tables/, figures/")
    parser.add_argument("--glue", help="GLUE fingerprint to report (default: the one most runs hold)")
    parser.add_argument("--rc", help="reading-comprehension fingerprint to report (default: the one most runs hold)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        print(report.build(args.source, args.out, args.glue, args.rc))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
