"""Run by `deepspeed --num_gpus N` (or plain python for the reference): trains a tiny SelfDistillation for a
few steps on fixed batches and writes the teacher and the losses to `--output` (rank 0)."""

import argparse
import json
import math
from pathlib import Path

import torch
from safetensors.torch import save_file

from vidrop import VidropConfig
from vidrop.data import SSLCollator
from vidrop.ssl import SelfDistillation

TINY = dict(
    hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=96, image_size=32, num_frames=4,
    tubelet_size=2, patch_size=8, small_crop_size=16, head_hidden_size=32, head_bottleneck_size=16,
    num_prototypes=32, num_patch_prototypes=32, drop_rate=0.5,
)
GLOBAL_BATCH = 4
MOMENTUM = 0.9


def global_batches(config, steps):
    """The same global batches in every process: `GLOBAL_BATCH` clips per step, token plans from seed 0."""
    generator = torch.Generator().manual_seed(0)
    collate = SSLCollator(config, seed=0)
    return [
        collate([
            {
                "global_views": torch.randn(2, 4, 3, 32, 32, generator=generator),
                "small_views": torch.randn(2, 4, 3, 16, 16, generator=generator),
            }
            for _ in range(GLOBAL_BATCH)
        ])
        for _ in range(steps)
    ]


def shard(batch, rank, world_size):
    per_rank = GLOBAL_BATCH // world_size
    return {k: v[rank * per_rank : (rank + 1) * per_rank] for k, v in batch.items()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--local_rank", type=int, default=-1)
    parser.add_argument("--stage", type=int, default=-1, help="ZeRO stage; -1 runs the single-process reference")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--output", required=True)
    parser.add_argument("--loss_type", default="dino_ibot")
    args = parser.parse_args()
    config = VidropConfig(**TINY, loss_type=args.loss_type)
    torch.manual_seed(0)
    model = SelfDistillation(config)
    # SGD keeps the comparison well conditioned: Adam's first steps are sign-like, so gradients that are zero
    # up to rounding (and rounded differently when summed over ranks) would take full-size steps of either sign.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = []
    if args.stage < 0:
        for batch in global_batches(config, args.steps):
            loss, _ = model(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            model.update_teacher(MOMENTUM)
            losses.append(loss.item())
        rank = 0
    else:
        import deepspeed
        import torch.distributed as dist

        from vidrop.training.ema import update_teacher_from_engine

        deepspeed.init_distributed()
        rank, world_size = dist.get_rank(), dist.get_world_size()
        with open(Path(__file__).resolve().parents[2] / "ds_configs" / f"zero{args.stage}.json") as f:
            ds_config = json.load(f)  # the repository's recipe for this stage
        ds_config.update(
            train_micro_batch_size_per_gpu=GLOBAL_BATCH // world_size,
            gradient_clipping=0.0,  # the reference does not clip
            bf16={"enabled": False},  # CPU: fp32
        )
        engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=ds_config)
        for batch in global_batches(config, args.steps):
            loss, _ = engine(shard(batch, rank, world_size))
            engine.backward(loss)
            engine.step()
            update_teacher_from_engine(engine.module, MOMENTUM)
            mean_loss = loss.detach().clone()
            dist.all_reduce(mean_loss)
            losses.append(mean_loss.item() / world_size)
        dist.barrier()
    if rank == 0:
        tensors = {f"teacher.{k}": v for k, v in model.teacher.state_dict().items()}
        tensors.update({k: v for k, v in model.state_dict().items() if "centering" in k})
        save_file({k: v.detach().contiguous() for k, v in tensors.items()}, f"{args.output}.safetensors")
        with open(f"{args.output}.json", "w") as f:
            json.dump({"losses": losses, "finite": all(map(math.isfinite, losses))}, f)
    if args.stage >= 0:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
