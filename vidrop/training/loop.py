"""The pre-training loop: data -> SelfDistillation under a DeepSpeed engine -> EMA teacher, with schedules,
TensorBoard, checkpoints, exact resume, export and `summary.json`."""

import json
import logging
import math
import os
import random
import tempfile
import time
from pathlib import Path

import deepspeed
import numpy as np
import torch
import torch.distributed as dist
from torchdata.stateful_dataloader import StatefulDataLoader
from tqdm.auto import tqdm

from ..conversion import load_backbone
from ..data import ClipStream, MultiCrop, SSLCollator, build_embedded_dataset
from ..evaluation import EvalArguments, evaluate, format_table
from ..hub import HubPushError, push_model
from ..models import VidropConfig
from ..ssl import SelfDistillation
from . import checkpoint
from .arguments import DEFAULT_DATASET, resolved
from .ema import update_teacher_from_engine
from .engine import build_engine, load_ds_config, set_schedule
from .export import export_from_engine
from .growth import RunGrowth
from .launch import free_port, release_shared_memory
from .schedules import SSLSchedules

logger = logging.getLogger(__name__)


def _seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _check_dataset(path, name="train_dataset"):
    """A clear error before any work for a dataset that is neither a local folder nor a Hub repo id."""
    if path == DEFAULT_DATASET or Path(path).is_dir():
        return
    looks_like_repo = path.count("/") == 1 and not path.startswith((".", "/", "~"))
    if not looks_like_repo:
        raise ValueError(f"{name}={path!r} does not exist; allowed: a compressed dataset folder or a Hub repo id")


def _ensure_dataset(path, rank):
    """Build the embedded synthetic dataset at the default path if it is absent (rank 0; others wait)."""
    if path != DEFAULT_DATASET or Path(path, "stats.json").exists():
        return
    if rank == 0:
        logger.info("building the embedded synthetic dataset in %s", path)
        build_embedded_dataset(path)
    dist.barrier()


def _steps_for_epochs(dataset, num_epochs, clips_per_step):
    """Optimizer steps for `num_epochs` passes over a local dataset, from the row count in its stats.json (one
    clip per row and epoch; datasets built before rows held segments count one row per video)."""
    stats = Path(dataset) / "stats.json"
    if not stats.exists():
        raise ValueError(
            f"num_epochs={num_epochs} needs {stats} to count the rows; allowed: a local dataset built by "
            "launchers/compress.py, or --max_steps"
        )
    totals = json.loads(stats.read_text())
    rows = totals.get("rows", totals["videos"])
    return max(1, math.ceil(num_epochs * rows / clips_per_step))


def _batches(loader, stream, epoch):
    """Endless batches; a new epoch (new shuffle) starts whenever the stream ends. Yields `(epoch, batch)`."""
    while True:
        for batch in loader:
            yield epoch, batch
        epoch += 1
        stream.set_epoch(epoch)


def _finite_everywhere(loss):
    """False on every rank if the loss is not finite on any rank (so that all ranks stop together)."""
    bad = (~torch.isfinite(loss.detach())).any().float()  # on the loss's device: NCCL reduces GPU tensors only
    dist.all_reduce(bad)
    return bad.item() == 0


def _out_of_time(start, max_seconds, device):
    """True on every rank once rank 0 has trained `max_seconds` (None: never)."""
    if max_seconds is None:
        return False
    spent = torch.tensor(float(time.perf_counter() - start >= max_seconds), device=device)
    dist.broadcast(spent, src=0)
    return bool(spent.item())


def _single_process_environment():
    """`python launchers/pretrain.py` without the DeepSpeed launcher: a world of one on a free local port."""
    if "RANK" in os.environ:
        return
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")


def _evaluate_teacher(teacher, output_dir, data_args, train_args):
    """Linear probe and k-NN of the teacher backbone just exported (rank 0), written to `output_dir/eval.json`."""
    args = EvalArguments(
        model=str(output_dir / "teacher"),
        train_dataset=data_args.train_dataset,
        eval_dataset=data_args.eval_dataset,
        seed=train_args.seed,
        output=str(output_dir / "eval.json"),
    )
    scores = evaluate(args, model=teacher)  # the exported weights, already in memory
    logger.info("evaluation of the teacher:\n%s", format_table(scores))
    return scores


def pretrain(model_args, data_args, train_args):
    """Run the pre-training described by the three argument dataclasses; returns the summary dict (rank 0)."""
    _single_process_environment()
    deepspeed.init_distributed()
    rank, world_size = dist.get_rank(), dist.get_world_size()
    output_dir = Path(train_args.output_dir)
    config = model_args.vidrop_config()
    ds_config = load_ds_config(
        train_args.deepspeed, train_args.micro_batch_size, train_args.gradient_accumulation_steps, world_size
    )
    growth = None
    if train_args.growth_schedule:
        growth = RunGrowth(train_args.growth_schedule, config, ds_config, train_args.learning_rate,
                           train_args.weight_decay, noise=train_args.growth_noise, seed=train_args.seed,
                           warmup_steps=train_args.growth_warmup_steps,
                           teacher_momentum=train_args.growth_teacher_momentum,
                           fade_steps=train_args.growth_fade_steps,
                           teacher_heads_only=train_args.growth_teacher_heads_only,
                           teacher_momentum_steps=train_args.growth_teacher_momentum_steps)
        config = growth.configs[0]  # config.json records the first shape; the schedule grows it
    _check_dataset(data_args.train_dataset)
    if data_args.eval_dataset:
        _check_dataset(data_args.eval_dataset, "eval_dataset")
    if train_args.save_total_limit is not None and train_args.save_total_limit < 1:
        raise ValueError(f"--save_total_limit {train_args.save_total_limit} is not allowed; allowed: >= 1, or unset "
                         "to keep every checkpoint")
    resume_tag = checkpoint.newest_complete_tag(output_dir)
    if resume_tag and not train_args.resume:  # a new run would overwrite them step by step
        raise ValueError(
            f"output_dir {output_dir} holds the checkpoints of an earlier run (newest {resume_tag}); allowed: "
            "--resume True to continue it, or another --output_dir"
        )
    if resume_tag:
        saved = VidropConfig.from_pretrained(output_dir)
        if saved != config:
            raise ValueError(f"--resume: {output_dir} was trained with another model configuration; allowed: the same")
    _ensure_dataset(data_args.train_dataset, rank)
    if train_args.num_epochs is not None:
        clips_per_step = train_args.micro_batch_size * train_args.gradient_accumulation_steps * world_size
        train_args.max_steps = _steps_for_epochs(data_args.train_dataset, train_args.num_epochs, clips_per_step)
        logger.info("%g epochs = %d steps", train_args.num_epochs, train_args.max_steps)
    if growth is not None:
        growth.check_steps(train_args.max_steps)

    _seed_everything(train_args.seed)
    resume_step = int(resume_tag.split("-")[1]) if resume_tag else 0
    model_config = growth.config_at(resume_step) if growth else config  # the shape the run had reached
    backbone = load_backbone(model_args.init_from, model_config) if model_args.init_from else None
    model = SelfDistillation(model_config, backbone)
    schedules = SSLSchedules(
        total_steps=train_args.max_steps,
        learning_rate=train_args.learning_rate,
        min_learning_rate=train_args.min_learning_rate,
        warmup_steps=min(train_args.warmup_steps, train_args.max_steps),
        weight_decay=train_args.weight_decay,
        final_weight_decay=train_args.final_weight_decay,
        momentum=train_args.momentum,
        final_momentum=train_args.final_momentum,
        teacher_temperature=train_args.teacher_temperature,
        warmup_teacher_temperature=train_args.warmup_teacher_temperature,
        teacher_temperature_warmup_steps=train_args.teacher_temperature_warmup_steps,
    )
    engine = build_engine(model, ds_config, train_args.learning_rate, train_args.weight_decay)

    stream = ClipStream(
        data_args.train_dataset,
        MultiCrop.from_config(
            config,
            flip_probability=data_args.flip_probability,
            jitter_probability=data_args.jitter_probability,
            jitter_strength=data_args.jitter_strength,
            grayscale_probability=data_args.grayscale_probability,
            global_crop_scale=data_args.global_crop_scale,
            small_crop_scale=data_args.small_crop_scale,
        ),
        num_frames=config.num_frames,
        frame_stride=config.frame_stride,
        rank=rank,
        world_size=world_size,
        seed=train_args.seed,
        shuffle_buffer=data_args.shuffle_buffer,
        skip_corrupt=data_args.skip_corrupt,
    )
    loader = StatefulDataLoader(
        stream,
        batch_size=train_args.micro_batch_size,
        num_workers=data_args.num_workers,
        collate_fn=SSLCollator(config, seed=train_args.seed),
    )
    step, epoch = 0, 0
    if resume_tag:
        step, epoch, loader_state = checkpoint.load(engine, model, output_dir, resume_tag)
        checkpoint.check_loader_workers(loader_state, data_args.num_workers, resume_tag)
        stream.set_epoch(epoch)
        loader.load_state_dict(loader_state)
        logger.info("resumed from %s at step %d", resume_tag, step)
    elif rank == 0:
        output_dir.mkdir(parents=True, exist_ok=True)
        config.save_pretrained(output_dir)  # config.json: what the checkpoints hold
        (output_dir / "arguments.json").write_text(json.dumps(resolved(model_args, data_args, train_args), indent=1))
    running = [engine, model]  # handed over: a growth replaces both, and no frame here may keep the old ones alive
    del engine, model
    try:
        summary = _train(running, loader, stream, schedules, train_args, data_args, output_dir, step, epoch, growth)
    finally:
        release_shared_memory()
    # Local on every rank. Left to interpreter exit, Gloo's worker threads now and then abort the finished process
    # ("terminate called without an active exception", exit -6) and the launcher reports the run as failed.
    dist.destroy_process_group()
    return summary


def _train(running, loader, stream, schedules, args, data_args, output_dir, step, epoch, growth):
    """The training loop; `running` is `[engine, model]`, emptied here so that a growth frees the old pair."""
    engine, model = running
    running.clear()
    rank, world_size = dist.get_rank(), dist.get_world_size()
    writer = None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(output_dir / "tensorboard")
    device = engine.device
    batches = _batches(loader, stream, epoch)
    clips_per_step = args.micro_batch_size * args.gradient_accumulation_steps * world_size
    metrics, start, started_at = {}, time.perf_counter(), step
    progress = tqdm(total=args.max_steps, initial=step, desc="pretrain", unit="step", disable=rank != 0)
    while step < args.max_steps:
        values = schedules.at(step) if growth is None else growth.at(step, schedules)
        if growth is not None:
            growth.fade(model, step)
        set_schedule(engine, values["lr"], values["weight_decay"])
        for micro_step in range(args.gradient_accumulation_steps):
            epoch, batch = next(batches)
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            if micro_step == 0 and growth is not None and growth.due(step) is not None:
                engine, model = growth.apply(engine, model, batch, step, values["teacher_temperature"], writer)
                set_schedule(engine, values["lr"], values["weight_decay"])
            loss, metrics = engine(batch, teacher_temperature=values["teacher_temperature"])
            if not _finite_everywhere(loss):
                raise FloatingPointError(
                    f"non-finite loss at step {step}: "
                    + ", ".join(f"{k}={float(v):.4g}" for k, v in metrics.items())
                    + "; the last good checkpoint is "
                    + (checkpoint.newest_complete_tag(output_dir) or "none (none saved yet)")
                )
            engine.backward(loss)
            engine.step()
        update_teacher_from_engine(engine.module, values["momentum"], values.get("backbone_momentum"))
        step += 1
        progress.update()
        if writer is not None and (step % args.logging_steps == 0 or step == args.max_steps):
            elapsed = time.perf_counter() - start
            for name, value in metrics.items():
                writer.add_scalar(f"train/{name}", float(value), step)
            for name, value in values.items():
                writer.add_scalar(f"schedule/{name}", value, step)
            grad_norm = engine.get_global_grad_norm()
            if grad_norm is not None:
                writer.add_scalar("train/grad_norm", float(grad_norm), step)
            writer.add_scalar("speed/clips_per_second", (step - started_at) * clips_per_step / max(elapsed, 1e-9), step)
        out_of_time = _out_of_time(start, args.max_seconds, device)
        if step % args.save_steps == 0 or step == args.max_steps or out_of_time:
            checkpoint.save(engine, model, output_dir, step, epoch, loader.state_dict(), args.save_total_limit)
            if rank == 0 and args.push_to_hub and args.push_checkpoints_to:
                _push_checkpoint(model, args, step)
        if out_of_time:
            logger.info("stopping at step %d: the budget of %g s is spent", step, args.max_seconds)
            break
    progress.close()
    seconds = time.perf_counter() - start
    export_from_engine(engine.module, output_dir)  # collective; after it the other ranks are done
    summary = None
    if rank == 0:  # alone from here: a long evaluation keeps no rank waiting in a collective with a timeout
        scores = None
        if data_args.eval_dataset:
            scores = _evaluate_teacher(model.teacher["backbone"], output_dir, data_args, args)
        if scores is not None:
            for name in ("linear_probe_top1", "knn_top1"):
                writer.add_scalar(f"eval/{name}", scores[name], step)
        writer.close()
        clips = (step - started_at) * clips_per_step
        summary = {
            "steps": step,
            "clips_seen": step * clips_per_step,
            "train_seconds": seconds,
            "stopped_by": "max_steps" if step >= args.max_steps else "max_seconds",
            "clips_per_second": clips / seconds if seconds > 0 else math.nan,
            "final_loss": {k: float(v) for k, v in metrics.items() if k.endswith("loss")},
            "config": model.config.to_dict(),
            "arguments": json.loads((output_dir / "arguments.json").read_text()),
            "world_size": world_size,
        }
        if scores is not None:
            summary["eval"] = {k: v for k, v in scores.items() if k != "arguments"}
        (output_dir / "summary.json").write_text(json.dumps(summary, indent=1))
        if args.push_to_hub:  # last: a refused push leaves every output in place
            push_model(output_dir, args.push_to_hub, private=args.hub_private,
                       commit_message=f"ViDROP teacher after {step} steps")
    return summary


def _push_checkpoint(model, args, step):
    """Push the teacher of this step to the `push_checkpoints_to` branch (rank 0); a failure only warns."""
    with tempfile.TemporaryDirectory() as folder:
        model.teacher["backbone"].save_pretrained(folder)  # the fp32 teacher is whole on every rank
        try:
            push_model(folder, args.push_to_hub, revision=args.push_checkpoints_to, private=args.hub_private,
                       commit_message=f"ViDROP teacher at step {step}")
        except HubPushError as error:
            logger.warning("checkpoint push at step %d failed, training goes on: %s", step, error)
