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
def update_teacher_from_engine(model, momentum, backbone_momentum=None):
    """`teacher = momentum * teacher + (1 - momentum) * student` from the engine's fp32 master weights.

    Args:
        model: the `SelfDistillation` module the engine wraps (`engine.module`), on every rank.
        momentum: EMA momentum in [0, 1].
        backbone_momentum: another momentum in [0, 1] for the teacher's backbone (its heads take `momentum`), as
            after a growth that restarts the heads' momentum only; None: `momentum` for the whole teacher.

    Must be called on every rank, after `engine.step()`, with the same momenta.
    """
    for name, value in (("momentum", momentum), ("backbone_momentum", backbone_momentum)):
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"{name}={value!r} is out of range; allowed: [0, 1]")
    student = dict(model.student.named_parameters())
    for name, teacher_param in model.teacher.named_parameters():
        param = student[name]
        master = safe_get_full_fp32_param(param)  # collective under ZeRO-3; None without an fp32 master
        source = param.detach() if master is None else master
        rate = backbone_momentum if backbone_momentum is not None and name.startswith("backbone.") else momentum
        teacher_param.mul_(rate).add_(source.to(teacher_param.device, torch.float32).view_as(teacher_param),
                                     alpha=1.0 - rate)
