"""Pre-train ViDROP: `deepspeed launchers/pretrain.py [options]` (or `python launchers/pretrain.py`).

With no options it runs the embedded default: builds the synthetic dataset if absent, pre-trains a small
ViDROP on it (CPU fp32, or GPU bf16 where available) and exports the student and teacher backbones.
`--help` lists every option; `--config recipe.yaml` reads them from a recipe (the command line overrides it).
"""

import logging
import os
import sys

from vidrop.training.arguments import parse_arguments
from vidrop.training.loop import pretrain


def main():
    model_args, data_args, train_args = parse_arguments()
    level = logging.INFO if int(os.environ.get("RANK", "0")) == 0 else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    pretrain(model_args, data_args, train_args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
