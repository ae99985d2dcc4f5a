"""Run an ablation study and write its reports.

    python launchers/ablate.py --study dropping --seeds 2 --budget_steps 200
    python launchers/ablate.py --study compression
    python launchers/ablate.py --study paper --budget_seconds 120
    python launchers/ablate.py --study grid --grid "drop_rate=0.5,0.9;mask_ratio=0.25,0.5" --seeds 3

Every variant differs from the baseline only in configuration (its resolved configuration is saved as
`runs/<variant>-seed<N>/variant.json`). Running the same study again reuses the finished runs. Outputs in
`OUTPUT_DIR/STUDY/`: `results.csv`, `results.md`, one PNG per metric, `loss_curves.png`, `tensorboard/`.
"""

import logging
import shlex
import sys

from transformers import HfArgumentParser

from vidrop.ablation import AblationArguments, run_study, study_dir, write_reports


def main():
    (args,) = HfArgumentParser(AblationArguments).parse_args_into_dataclasses()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    variants, rows = run_study(args)
    command = "python launchers/ablate.py " + shlex.join(sys.argv[1:])
    budget = f"{args.budget_steps} steps" + (f" or {args.budget_seconds:g} s" if args.budget_seconds else "")
    paths = write_reports(args.study, variants, rows, study_dir(args), command, budget)
    print((study_dir(args) / "results.md").read_text())
    print("wrote " + ", ".join(str(p) for p in paths))
    failed = sum(r["status"] != "ok" for r in rows)
    return 1 if failed == len(rows) else 0


if __name__ == "__main__":
    sys.exit(main())
