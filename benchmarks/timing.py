"""Shared timing for the benchmarks: warm-up, then the median of repeated runs of a step."""

import statistics
import time

import torch


def median_seconds(step, repeats, warmup=1, device=None):
    """Median wall-clock seconds of `step()` over `repeats` runs after `warmup` runs (synchronised on GPUs)."""

    def synchronize():
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        step()
    synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def add_common_arguments(parser):
    """`--device`, `--bf16`, `--repeats`, `--threads` for every benchmark."""
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--bf16", action="store_true", help="autocast to bfloat16 (the GPU recipe)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the median is reported")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 keeps the default)")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def setup(args):
    """Apply the common arguments; returns `(device, autocast context factory)`."""
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)

    return device, autocast
