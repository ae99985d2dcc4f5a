"""The DeepSpeed engine of a run: its JSON checked against the run's arguments, the optimizer, the engine."""

import json
from pathlib import Path

import deepspeed
import torch

REPOSITORY = Path(__file__).resolve().parents[2]


def load_ds_config(path, micro_batch_size, gradient_accumulation_steps, world_size):
    """Read a DeepSpeed JSON and make it agree with the run's arguments, or say clearly why it cannot.

    The micro batch and accumulation come from the arguments; a `train_batch_size` in the file must equal
    their product with the number of ranks. bf16 stays on only where the hardware supports it (fp32 on CPU).
    """
    path = Path(path)
    if not path.is_absolute() and not path.exists():
        path = REPOSITORY / path  # `ds_configs/...` from any working directory
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(
            f"deepspeed config {str(path)!r} cannot be read: {error}; allowed: a JSON file of ds_configs/"
        ) from error
    if '"auto"' in json.dumps(config):
        raise ValueError(f"deepspeed config {str(path)!r} has \"auto\" values; allowed: concrete values only")
    expected = micro_batch_size * gradient_accumulation_steps * world_size
    if "train_batch_size" in config and config["train_batch_size"] != expected:
        raise ValueError(
            f"deepspeed config {str(path)!r} has train_batch_size={config['train_batch_size']}, but micro_batch_size="
            f"{micro_batch_size} x gradient_accumulation_steps={gradient_accumulation_steps} x {world_size} ranks "
            f"= {expected}; allowed: drop train_batch_size or make them agree"
        )
    config.update(
        train_micro_batch_size_per_gpu=micro_batch_size,
        gradient_accumulation_steps=gradient_accumulation_steps,
    )
    config.pop("train_batch_size", None)
    bf16_possible = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    config["bf16"] = {"enabled": bool(config.get("bf16", {}).get("enabled")) and bf16_possible}
    if config.get("fp16", {}).get("enabled") and not torch.cuda.is_available():
        raise ValueError(f"deepspeed config {str(path)!r} enables fp16, which needs a GPU; allowed on CPU: fp32")
    return config


def parameter_groups(model):
    """AdamW groups: weights decay; biases, norms, tokens and position embeddings do not (DINO convention)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim <= 1 or name.endswith(("_token", "position_embeddings")) else decay).append(param)
    return [
        {"params": decay, "apply_weight_decay": True},
        {"params": no_decay, "weight_decay": 0.0, "apply_weight_decay": False},
    ]


def build_engine(model, ds_config, learning_rate, weight_decay):
    """`deepspeed.initialize` with a torch AdamW on `parameter_groups` -> the engine."""
    optimizer = torch.optim.AdamW(
        parameter_groups(model), lr=learning_rate, weight_decay=weight_decay, betas=(0.9, 0.999)
    )
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=ds_config)
    return engine


def set_schedule(engine, lr, weight_decay):
    """Apply the step's learning rate and weight decay to every parameter group of the engine's optimizer."""
    for group in engine.optimizer.param_groups:
        group["lr"] = lr
        if group.get("apply_weight_decay", True):
            group["weight_decay"] = weight_decay
