"""Checkpoints that resume exactly and survive a crash while saving.

Layout: `output_dir/checkpoints/step-XXXXXXXX/` holds DeepSpeed's files (model, optimizer, step counters,
the centering buffers), `teacher.safetensors` (the fp32 EMA teacher, written by rank 0 before DeepSpeed
saves) and, last of all, a `complete` marker. Resuming takes the newest folder that has the marker, so a
save that was killed part-way is ignored and the previous checkpoint is used. The client state carries the
global step, the epoch, and every rank's data-loader position and RNG states. With a limit on how many to keep,
older folders are deleted only after a newer save is complete, each one's marker first.
"""

import random
import shutil
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


def complete_tags(output_dir):
    """The tags of the checkpoints whose save finished, oldest first."""
    root = checkpoint_root(output_dir)
    return sorted(p.name for p in root.glob("step-*") if (p / COMPLETE).exists()) if root.exists() else []


def newest_complete_tag(output_dir):
    """The tag of the newest checkpoint whose save finished, or None."""
    tags = complete_tags(output_dir)
    return tags[-1] if tags else None


def prune(output_dir, keep):
    """Delete every checkpoint folder older than the newest `keep` complete ones, complete or not; returns the
    deleted tags. Each folder loses its `complete` marker first, so one whose deletion is cut short is ignored
    by a resume like a save killed part-way."""
    if keep < 1:
        raise ValueError(f"keep={keep!r} checkpoints is not allowed; allowed: >= 1")
    tags = complete_tags(output_dir)
    if len(tags) <= keep:
        return []
    oldest_kept = tags[-keep]
    old = sorted(p for p in checkpoint_root(output_dir).glob("step-*") if p.name < oldest_kept)
    for folder in old:
        (folder / COMPLETE).unlink(missing_ok=True)
        shutil.rmtree(folder)
    return [folder.name for folder in old]


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


def save(engine, model, output_dir, step, epoch, loader_state, keep=None):
    """Save a checkpoint of `engine` (on every rank) at `step`; returns its folder. With `keep`, rank 0 then
    deletes the checkpoints older than the newest `keep` complete ones (`prune`)."""
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
        if keep is not None:
            prune(output_dir, keep)
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
