"""Training schedules as pure functions of the global step: learning rate, weight decay, EMA momentum and
teacher temperature (DINO / iBOT recipes), so that a resumed run recomputes them from the step alone."""

import math
from dataclasses import dataclass


def cosine_schedule(step, total_steps, base, final, warmup_steps=0, warmup_start=0.0):
    """Linear warm-up from `warmup_start` to `base` over `warmup_steps`, then a half cosine from `base` to
    `final` at `total_steps`; `final` after that."""
    if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
        raise ValueError(
            f"total_steps={total_steps}, warmup_steps={warmup_steps}; allowed: total_steps >= 1 and "
            "0 <= warmup_steps <= total_steps"
        )
    if step < warmup_steps:
        return warmup_start + (base - warmup_start) * step / warmup_steps
    if step >= total_steps:
        return final
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return final + (base - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_then_constant(step, warmup_steps, start, end):
    """Linear from `start` to `end` over `warmup_steps`, then `end` (the DINO teacher temperature)."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return end
    return start + (end - start) * step / warmup_steps


@dataclass
class SSLSchedules:
    """The four scheduled values of a self-distillation run, from the global step.

    Defaults follow DINOv2 / iBOT: learning rate warm-up then cosine decay, weight decay 0.04 -> 0.2, EMA
    momentum 0.996 -> 1 (cosine), teacher temperature 0.04 -> 0.07 over its warm-up.
    """

    total_steps: int
    learning_rate: float = 5e-4
    min_learning_rate: float = 1e-6
    warmup_steps: int = 0
    weight_decay: float = 0.04
    final_weight_decay: float = 0.2
    momentum: float = 0.996
    final_momentum: float = 1.0
    teacher_temperature: float = 0.07
    warmup_teacher_temperature: float = 0.04
    teacher_temperature_warmup_steps: int = 0

    def at(self, step):
        """`{"lr", "weight_decay", "momentum", "teacher_temperature"}` at global step `step`."""
        return {
            "lr": cosine_schedule(
                step, self.total_steps, self.learning_rate, self.min_learning_rate, self.warmup_steps
            ),
            "weight_decay": cosine_schedule(step, self.total_steps, self.weight_decay, self.final_weight_decay),
            "momentum": cosine_schedule(step, self.total_steps, self.momentum, self.final_momentum),
            "teacher_temperature": warmup_then_constant(
                step, self.teacher_temperature_warmup_steps, self.warmup_teacher_temperature, self.teacher_temperature
            ),
        }
