"""Checkpoints that resume exactly and survive a crash while saving.

Layout: `output_dir/checkpoints/step-XXXXXXXX/` holds DeepSpeed's files (model, optimizer, step counters,
the centering buffers), `teacher.safetensors` (the fp32 EMA teacher, written by rank 0 before DeepSpeed
saves) and, last of all, a `complete` marker. Resuming takes the newest folder that has the marker, so a
save that was killed part-way is ignored and the previous checkpoint is used. The client state carries the
global step, the epoch, and every rank's data-loader position and RNG states.
"""

import random
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file

COMPLETE = "complete"
TEACHER_FILE = "teacher.safetensors"


def checkpoint_root(output_dir):
    return Path(output_dir) / "checkpoints"


def tag_for(step):
    return f"step-{step:08d}"


def newest_complete_tag(output_dir):
    """The tag of the newest checkpoint whose save finished, or None."""
    root = checkpoint_root(output_dir)
    tags = sorted(p.name for p in root.glob("step-*") if (p / COMPLETE).exists()) if root.exists() else []
    return tags[-1] if tags else None


def rng_states():
    """This process's Python, numpy, torch and (on a GPU) current CUDA device RNG states."""
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state()  # drop path and dropout draw from it on GPUs
    return states


def set_rng_states(states):
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["cuda"])


def _gather(value):
    """Every rank's `value` as a list indexed by rank (client_state is written by rank 0 under ZeRO-1/2)."""
    values = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def save(engine, model, output_dir, step, epoch, loader_state):
    """Save a checkpoint of `engine` (on every rank) at `step`; returns its folder."""
    root, tag = checkpoint_root(output_dir), tag_for(step)
    folder = root / tag
    rank = dist.get_rank()
    if rank == 0:
        folder.mkdir(parents=True, exist_ok=True)
        teacher = {k: v.detach().cpu().contiguous() for k, v in model.teacher.state_dict().items()}
        save_file(teacher, str(folder / TEACHER_FILE))
        model.config.save_pretrained(folder)  # the shape of this checkpoint (a growth schedule changes it)
    client_state = {
        "global_step": step,
        "epoch": epoch,
        "loader_states": _gather(loader_state),
        "rng_states": _gather(rng_states()),
    }
    engine.save_checkpoint(str(root), tag=tag, client_state=client_state)  # barriers inside
    if rank == 0:
        (folder / COMPLETE).write_text(str(step))
    dist.barrier()
    return folder


def load(engine, model, output_dir, tag):
    """Load checkpoint `tag` into `engine` and the teacher; returns `(step, epoch, loader_state)` of this rank
    after restoring its RNG states."""
    root = checkpoint_root(output_dir)
    _, client_state = engine.load_checkpoint(str(root), tag=tag, load_lr_scheduler_states=False)
    if client_state is None:
        raise RuntimeError(f"checkpoint {root / tag} could not be loaded by DeepSpeed")
    teacher = load_file(str(root / tag / TEACHER_FILE))
    model.teacher.load_state_dict({k: v.to(next(model.teacher.parameters()).device) for k, v in teacher.items()})
    rank = dist.get_rank()
    if len(client_state["rng_states"]) != dist.get_world_size():
        raise ValueError(
            f"checkpoint {tag} was written by {len(client_state['rng_states'])} ranks, this run has "
            f"{dist.get_world_size()}; allowed: the same number of ranks "
            "(or convert it to DeepSpeed's universal format)"
        )
    set_rng_states(client_state["rng_states"][rank])
    return client_state["global_step"], client_state["epoch"], client_state["loader_states"][rank]


def check_loader_workers(loader_state, num_workers, tag):
    """Raise `ValueError` unless the `StatefulDataLoader` state `loader_state` of checkpoint `tag` was saved
    with `num_workers` workers: each worker's position in the stream is saved, so resuming exactly needs the
    same split."""
    saved = loader_state.get("_snapshot", {}).get("_main_snapshot", {}).get("_num_workers", 0)
    if saved != num_workers:
        raise ValueError(
            f"--num_workers {num_workers} differs from the {saved} DataLoader workers of checkpoint {tag}; allowed: "
            f"--num_workers {saved} to resume it (each worker's position in the stream is saved)"
        )
