"""The EMA teacher update under DeepSpeed ZeRO, exact at every stage.

The teacher of `vidrop.ssl.SelfDistillation` is a plain fp32 module outside the engine, so it is never cast
nor sharded. Its update reads the student's fp32 master weights from the engine: under ZeRO-1/2 every rank
holds them (partitioned only in the optimizer), under ZeRO-3 they are gathered one parameter at a time with
`deepspeed.utils.safe_get_full_fp32_param`, a collective that every rank calls in the same order. Nothing is
written through `GatheredParameters` (writes through a read-only gather are silently discarded).
"""

import torch
from deepspeed.utils import safe_get_full_fp32_param


@torch.no_grad()
def update_teacher_from_engine(model, momentum):
    """`teacher = momentum * teacher + (1 - momentum) * student` from the engine's fp32 master weights.

    Args:
        model: the `SelfDistillation` module the engine wraps (`engine.module`), on every rank.
        momentum: EMA momentum in [0, 1].

    Must be called on every rank, after `engine.step()`, with the same `momentum`.
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum={momentum!r} is out of range; allowed: [0, 1]")
    student = dict(model.student.named_parameters())
    for name, teacher_param in model.teacher.named_parameters():
        param = student[name]
        master = safe_get_full_fp32_param(param)  # collective under ZeRO-3; None without an fp32 master
        source = param.detach() if master is None else master
        teacher_param.mul_(momentum).add_(source.to(teacher_param.device, torch.float32).view_as(teacher_param),
                                         alpha=1.0 - momentum)
