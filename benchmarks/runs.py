"""Shared by the learning benchmarks: a pre-training run per seed in a work folder, reused once it finished."""

import subprocess
from pathlib import Path

from vidrop.training.launch import deepspeed_command

ROOT = Path(__file__).resolve().parents[1]


def pretrain(workdir, name, seed, *options):
    """Run `launchers/pretrain.py` with `options` and `--seed seed` into `workdir/<name>[-seed<seed>]` (seed 0: the
    plain folder, and no `--seed`, so earlier work folders are reused), from `workdir`, unless a run finished
    there (its `summary.json`) -> (its folder, the command)."""
    output = Path(workdir) / (name if seed == 0 else f"{name}-seed{seed}")
    seed_options = ["--seed", seed] if seed else []
    command = deepspeed_command(ROOT / "launchers" / "pretrain.py", "--output_dir", output, *seed_options, *options)
    if not (output / "summary.json").exists():
        subprocess.run(command, check=True, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return output, command
