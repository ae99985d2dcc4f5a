"""Training throughput and memory: clips/s of the default recipe (tiny and small backbones) with 1 and 2 ranks
under ZeRO-2 and ZeRO-3, through the real launcher; and DeepSpeed's per-GPU model-state memory estimates for
ViT-B/L/H (student and heads at the recipes' sizes) on 8 and 64 GPUs.

    python benchmarks/training_throughput.py
"""

import argparse
import contextlib
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from accelerate import init_empty_weights
from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs_all_cold
from deepspeed.runtime.zero.stage_1_and_2 import (
    estimate_zero2_model_states_mem_needs_all_cold,
)

from vidrop import VidropConfig
from vidrop.ssl import SelfDistillation
from vidrop.training.arguments import DEMO_OVERRIDES, parse_overrides
from vidrop.training.launch import deepspeed_command

ROOT = Path(__file__).resolve().parents[1]
RECIPE_HEADS = {
    "num_prototypes": 65536, "num_patch_prototypes": 8192, "head_hidden_size": 2048, "head_bottleneck_size": 256,
}



def throughput(preset, ranks, stage, steps, workdir):
    """clips/s from `summary.json` of a real run (the embedded dataset, the demo clip size)."""
    output = Path(workdir) / f"{preset}-{ranks}-{stage}"
    command = deepspeed_command(ROOT / "launchers" / "pretrain.py", "--preset", preset, "--max_steps", steps,
                                "--save_steps", steps, "--output_dir", output, "--deepspeed",
                                ROOT / "ds_configs" / f"zero{stage}.json", "--micro_batch_size", 4, num_gpus=ranks)
    subprocess.run(command, check=True, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads((output / "summary.json").read_text())["clips_per_second"]


def estimates(preset):
    """Student + heads parameter count (built on the meta device) and the largest layer's."""
    config = VidropConfig.from_preset(preset, **RECIPE_HEADS)
    with init_empty_weights():
        student = SelfDistillation(config).student
    total = sum(p.numel() for p in student.parameters())
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in student.modules())
    return total, largest


def _per_gpu_gib(estimator, *args, options):
    """The per-GPU GB column of the estimator's line for `options` (it prints CPU GB | GPU GB | options)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        estimator(*args)
    line = next(line for line in out.getvalue().splitlines() if line.strip().endswith(options))
    return float(line.split("|")[1].strip().rstrip("GB"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--skip_runs", action="store_true", help="only the memory estimates")
    args = parser.parse_args()
    if not args.skip_runs:
        workdir = tempfile.mkdtemp()
        demo = parse_overrides(DEMO_OVERRIDES)
        print(f"throughput, {args.steps} steps, micro batch 4 per rank, clips {demo['num_frames']}"
              f"x{demo['image_size']}^2, CPU fp32")
        print(f"{'backbone':<8} {'ranks':>5} {'ZeRO':>5} {'clips/s':>8}")
        for preset in ("tiny", "small"):
            for ranks in (1, 2):
                for stage in (2, 3):
                    clips_per_second = throughput(preset, ranks, stage, args.steps, workdir)
                    print(f"{preset:<8} {ranks:>5} {stage:>5} {clips_per_second:>8.2f}")
    print("\nper-GPU model-state memory, GB (DeepSpeed estimators: bf16 weights and gradients, fp32 Adam)")
    print(f"{'model':<6} {'params':>8} {'GPUs':>5} {'ZeRO-2':>7} {'ZeRO-3':>7} {'ZeRO-3 + CPU optimizer':>23}")
    for preset in ("base", "large", "huge"):
        total, largest = estimates(preset)
        for gpus, nodes in ((8, 1), (8, 8)):
            zero2 = _per_gpu_gib(estimate_zero2_model_states_mem_needs_all_cold, total, gpus, nodes,
                                 options="offload_optimizer=none")
            zero3 = _per_gpu_gib(estimate_zero3_model_states_mem_needs_all_cold, total, largest, gpus, nodes,
                                 options="offload_param=none, offload_optimizer=none, zero_init=1")
            offload = _per_gpu_gib(estimate_zero3_model_states_mem_needs_all_cold, total, largest, gpus, nodes,
                                   options="offload_param=none, offload_optimizer=OffloadDeviceEnum.cpu, zero_init=1")
            print(f"{preset:<6} {total / 1e6:>7.0f}M {gpus * nodes:>5} {zero2:>7.2f} {zero3:>7.2f} {offload:>23.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
