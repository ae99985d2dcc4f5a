"""Evaluate a pre-trained ViDROP encoder by linear probing and k-NN on labelled compressed datasets.

    python launchers/evaluate.py --model outputs/demo/teacher --train_dataset outputs/data/synthetic
    python launchers/evaluate.py --model M --train_dataset TRAIN --eval_dataset VAL --num_clips 4 --num_crops 3

Writes `eval.json` (default: inside the model folder) and prints a table. `--help` documents every option.
"""

import logging
import sys

from transformers import HfArgumentParser

from vidrop.evaluation import EvalArguments, evaluate, format_table


def main():
    (args,) = HfArgumentParser(EvalArguments).parse_args_into_dataclasses()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(format_table(evaluate(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
