"""The GPU path of the encoder: bf16 against fp32, and each SDPA attention backend, on a ViT-B sparse encoder.

For the kept tokens of a 16 x 224^2 clip (drop 0.75) this reports, per SDPA backend (flash, memory-efficient,
cuDNN, math), whether the backend runs the encoder in bf16, the relative error of its last hidden state
against the fp32 model, and the median time of forward + backward. The fp32 math backend is the baseline of
the ratio column. Needs a CUDA GPU.

    python benchmarks/gpu_check.py                 # ViT-B, batch 8
    python benchmarks/gpu_check.py --preset large --batch 4
"""

import argparse
import sys

import torch
from timing import median_seconds
from torch.nn.attention import SDPBackend, sdpa_kernel

from vidrop import VidropConfig, VidropModel
from vidrop.tokens import make_token_plan

BACKENDS = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "math": SDPBackend.MATH,
}


def relative_error(output, reference):
    """`||output - reference|| / ||reference||` in fp32."""
    return ((output.float() - reference).norm() / reference.norm()).item()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="base")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--drop_rate", type=float, default=0.75)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default="cuda", help="cpu only to try the script itself")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check needs a CUDA GPU; none is visible", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    if device.type == "cuda":
        print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, bf16: {torch.cuda.is_bf16_supported()}")

    config = VidropConfig.from_preset(args.preset, drop_rate=args.drop_rate, num_frames=16, image_size=224)
    model = VidropModel(config).to(device).train()
    clips = torch.randn(args.batch, config.num_frames, 3, config.image_size, config.image_size, device=device)
    generator = torch.Generator().manual_seed(0)
    grid = config.token_grid
    plan = make_token_plan(grid, args.batch, config.drop_rate, config.mask_ratio, config.drop_pattern, generator,
                           config.mask_pattern)
    keep_indices, mask = plan.keep_indices.to(device), plan.mask.to(device)  # (B, K) each
    print(f"{args.preset}: {config.num_hidden_layers} blocks x {config.hidden_size}, batch {args.batch}, "
          f"{keep_indices.shape[1]} kept tokens per clip of {grid[0] * grid[1] * grid[2]}")

    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        reference = model(clips, keep_indices, mask).last_hidden_state.float()  # (B, 1 + K, D) fp32

    def step_under(backend, dtype):
        def step():
            model.zero_grad(set_to_none=True)
            with sdpa_kernel(backend), torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                hidden = model(clips, keep_indices, mask).last_hidden_state
            hidden.float().square().mean().backward()

        return step

    baseline = median_seconds(step_under(SDPBackend.MATH, torch.float32), args.repeats, device=device)
    print(f"{'backend':<10} {'dtype':<6} {'runs':<5} {'rel. error':>10} {'s/step':>8} {'vs fp32 math':>12}")
    print(f"{'math':<10} {'fp32':<6} {'yes':<5} {0.0:>10.2e} {baseline:>8.4f} {1.0:>12.3f}")
    for name, backend in BACKENDS.items():
        try:
            with torch.no_grad(), sdpa_kernel(backend), torch.autocast(device.type, dtype=torch.bfloat16):
                output = model(clips, keep_indices, mask).last_hidden_state
            seconds = median_seconds(step_under(backend, torch.bfloat16), args.repeats, device=device)
        except RuntimeError as error:  # a backend that cannot run these shapes or this device
            print(f"{name:<10} {'bf16':<6} {'no':<5} {str(error).splitlines()[0][:60]}")
            continue
        print(f"{name:<10} {'bf16':<6} {'yes':<5} {relative_error(output, reference):>10.2e} {seconds:>8.4f} "
              f"{baseline / seconds:>12.3f}")
    if device.type == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
