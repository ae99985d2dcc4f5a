"""Growth inside a DeepSpeed run: `--growth_schedule "tiny:0,small:2000,base:6000"` trains the first shape from
step 0 and grows student, teacher and Adam's moments into each next shape when the run reaches its step.

A growth gathers the full fp32 student parameters and moments from the engine (any ZeRO stage), grows them with
`vidrop.expansion` on every rank with the same seed (so the ranks, and the student and its teacher, agree), and
builds a new engine around the grown model with the moments put back and Adam's step count kept. The global batch
does not change. A resumed run rebuilds the shape its step had reached: a checkpoint at the growth step holds the
model before the growth, which then happens again.

With `fade_steps > 0` a growth is by masks (`vidrop.expansion.grow_masked`): new units start fresh and are faded in
linearly over that many steps by the models' growth masks, which follow from the step (a resumed run sets them
again).
"""

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from deepspeed.utils import (
    lazy_init_hp_params_optimizer_state,
    safe_get_full_fp32_param,
    safe_get_full_optimizer_state,
    safe_set_full_optimizer_state,
)

from ..expansion import SHAPE_FIELDS, fade_masks, grow, grow_adam_state, grow_masked, target_config
from ..models import PRESETS, VidropConfig
from ..ssl import SelfDistillation
from .engine import build_engine
from .schedules import cosine_schedule

logger = logging.getLogger(__name__)


@dataclass
class Stage:
    """One shape of a growth schedule: from `step` on, the model has `shape` (the `SHAPE_FIELDS`)."""

    step: int
    name: str
    shape: dict


def _shape(name):
    """Shape fields of a preset, or of a JSON file of `VidropConfig` fields."""
    if name in PRESETS:
        return dict(PRESETS[name])
    path = Path(name)
    if path.suffix == ".json" and path.is_file():
        fields = json.loads(path.read_text())
        return {k: fields[k] for k in SHAPE_FIELDS if k in fields}
    raise ValueError(f"growth stage {name!r} is neither a preset ({', '.join(PRESETS)}) nor a JSON config file")


def parse_growth_schedule(text):
    """`"tiny:0,small:2000"` -> `[Stage]`: the first at step 0, steps increasing."""
    stages = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, step = item.rpartition(":")
        if not name or not step.isdigit():
            raise ValueError(f"growth_schedule item {item!r} is not 'shape:step'; allowed: e.g. 'tiny:0,small:2000'")
        stages.append(Stage(int(step), name, _shape(name)))
    if not stages or stages[0].step != 0 or any(b.step <= a.step for a, b in zip(stages, stages[1:])):
        raise ValueError(f"growth_schedule={text!r}: allowed: a first shape at step 0, then increasing steps")
    return stages


def stage_configs(base, stages):
    """The `VidropConfig` of every stage: the first is `base` with the first shape, each next one grown from it
    (invalid growth is a `ValueError` before any training)."""
    first = {**base.to_dict(), **stages[0].shape}
    if base.position_embedding_dim == base.hidden_size:  # a fixed table follows the first shape's width
        first["position_embedding_dim"] = None
    configs = [VidropConfig(**first)]
    for stage in stages[1:]:
        configs.append(target_config(configs[-1], stage.shape))
    return configs


def stage_at(stages, step):
    """Index of the stage a model that has taken `step` steps is in; a growth at step S happens before step S + 1,
    so a checkpoint at S still holds the previous shape."""
    return max(i for i, stage in enumerate(stages) if stage.step < step or stage.step == 0)


def _link_adam_state(engine):
    """Point ZeRO-1/2's per-parameter fragments at Adam's state of every fp32 partition. DeepSpeed links them once,
    after the first step, and a group whose state did not exist then stays unlinked (its moments unreadable)."""
    zero = engine.optimizer
    for group, flat in zip(getattr(zero, "bit16_groups", []), getattr(zero, "single_partition_of_fp32_groups", [])):
        if zero.optimizer.state.get(flat):
            lazy_init_hp_params_optimizer_state(group, flat, zero.optimizer.state)


def _gathered(engine, model):
    """Full fp32 student parameters and Adam moments (collectives under ZeRO-3), and the buffers."""
    _link_adam_state(engine)
    parameters, moments = {}, {}
    for name, parameter in model.student.named_parameters():
        parameters[name] = safe_get_full_fp32_param(parameter).detach().float().cpu()
        moments[name] = {key: safe_get_full_optimizer_state(parameter, key).detach().float().cpu()
                         for key in ("exp_avg", "exp_avg_sq")}
    buffers = {name: b.detach().float().cpu() for name, b in model.student.named_buffers()}
    return parameters, moments, buffers


def _adam_step(engine):
    """Adam's step counter (bias correction), from the engine's optimizer state."""
    states = [s for s in engine.optimizer.optimizer.state.values() if "step" in s]
    return states[0]["step"].clone() if states else torch.tensor(0.0)


def _prepare_adam_state(engine, step):
    """Create Adam's (zero) state on the engine's fp32 partitions so that moments can be set before the first
    step (torch's AdamW creates it lazily), linked to ZeRO-1/2's parameter fragments."""
    zero = engine.optimizer
    flats = getattr(zero, "single_partition_of_fp32_groups", None) or zero.fp32_partitioned_groups_flat
    for flat in flats:
        zero.optimizer.state[flat] = {"step": step.clone(), "exp_avg": torch.zeros_like(flat),
                                      "exp_avg_sq": torch.zeros_like(flat)}
    _link_adam_state(engine)


def grow_run(engine, model, target, ds_config, learning_rate, weight_decay, noise, seed, masked=False):
    """Grow a running `SelfDistillation` and its engine into the configuration `target` -> `(engine, model)`, by
    copies (`vidrop.expansion.grow`) or, `masked`, by masks (`grow_masked`; the caller sets the masks).

    Call it on every rank at the same step; the returned engine continues the run.
    """
    parameters, moments, buffers = _gathered(engine, model)
    step = _adam_step(engine)
    others = {k: v.cpu() for k, v in model.state_dict().items() if not k.startswith("student.")}  # centering
    teacher = {k: v.cpu() for k, v in model.teacher.state_dict().items()}
    config = model.config
    if masked:
        student = grow_masked(config, {**parameters, **buffers}, target, "weight", seed).state
        grown_teacher = grow_masked(config, teacher, target, "weight", fresh=student).state  # same new units
    else:
        student = grow(config, {**parameters, **buffers}, target, "weight", noise, seed).state
        grown_teacher = grow(config, teacher, target, "weight", noise, seed).state
    grown_moments = grow_adam_state(config, parameters, moments, target, seed, masked=masked)
    del engine
    grown = SelfDistillation(target)
    grown.load_state_dict({**{f"student.{k}": v for k, v in student.items()}, **others})
    grown.teacher.load_state_dict(grown_teacher)
    engine = build_engine(grown, ds_config, learning_rate, weight_decay)
    _prepare_adam_state(engine, step)
    for name, parameter in grown.student.named_parameters():
        for key in ("exp_avg", "exp_avg_sq"):
            value = grown_moments[name][key].to(engine.device)
            safe_set_full_optimizer_state(parameter, value, key)
    logger.info("grew to hidden_size=%d, %d heads, MLP %d, %d blocks", target.hidden_size, target.num_attention_heads,
                target.intermediate_size, target.num_hidden_layers)
    return engine, grown


def _eval_loss(engine, batch, teacher_temperature):
    """The objective on `batch` without training side effects (eval mode: no drop path, no center update)."""
    engine.eval()
    with torch.no_grad():
        loss, _ = engine(batch, teacher_temperature=teacher_temperature)
    engine.train()
    return float(loss)


class RunGrowth:
    """A run's growth schedule: the shape at each step, the growths, and the re-warm of the learning rate (and
    optionally of the teacher) after each.

    Args:
        schedule: `"tiny:0,small:2000"` (see `parse_growth_schedule`).
        base: the run's `VidropConfig` (everything but the shape).
        ds_config, learning_rate, weight_decay: to build the grown engines as the first was built.
        noise, seed: symmetry-breaking noise of the growth operators, and its seed (the same on every rank).
        warmup_steps: after a growth the learning rate ramps from 1/warmup_steps of the schedule's back to it.
        teacher_momentum: if set, the teacher's EMA momentum restarts at this value after each growth and rises
            (cosine) to the run's final momentum at its last step, so that the grown teacher follows the grown
            student as the run's teacher followed its student at the start; None keeps the run's momentum schedule.
        teacher_heads_only: restart only the momentum of the teacher's projection heads (`at` then also returns
            the run's momentum as `backbone_momentum`), so that the targets follow the grown features while the
            teacher's backbone keeps its long average.
        teacher_momentum_steps: with `teacher_momentum`, return (cosine) from it to the run's momentum schedule over
            this many steps after each growth instead of rising to the final momentum at the run's last step: a
            re-warm of the teacher, as `warmup_steps` is of the learning rate.
        fade_steps: 0 grows by copies (with `noise`); more grows by masks, fading the new units in over that many
            steps (each fade must end before the next growth and the run's end: `check_steps`).
    """

    def __init__(self, schedule, base, ds_config, learning_rate, weight_decay, noise=1.0, seed=0, warmup_steps=10,
                 teacher_momentum=None, fade_steps=0, teacher_heads_only=False, teacher_momentum_steps=None):
        self.stages = parse_growth_schedule(schedule)
        if fade_steps < 0:
            raise ValueError(f"growth fade_steps={fade_steps}: allowed: 0 (growth by copies) or more steps")
        self.fade_steps, self._masked = fade_steps, None  # (model id, fraction) last set
        self.check_steps(None)
        self.configs = stage_configs(base, self.stages)
        self.ds_config, self.learning_rate, self.weight_decay = ds_config, learning_rate, weight_decay
        self.noise, self.seed, self.warmup_steps = noise, seed, warmup_steps
        if teacher_momentum is not None and not 0 <= teacher_momentum <= 1:
            raise ValueError(f"growth teacher_momentum={teacher_momentum}: allowed: None, or a value in [0, 1]")
        if teacher_heads_only and teacher_momentum is None:
            raise ValueError("growth teacher_heads_only restarts the heads' momentum at teacher_momentum, which is "
                             "None; allowed: teacher_heads_only with a teacher_momentum")
        if teacher_momentum_steps is not None and (teacher_momentum is None or teacher_momentum_steps < 1):
            raise ValueError(f"growth teacher_momentum_steps={teacher_momentum_steps} with teacher_momentum="
                             f"{teacher_momentum}; allowed: None, or 1 or more steps with a teacher_momentum")
        self.teacher_momentum, self.teacher_heads_only = teacher_momentum, teacher_heads_only
        self.teacher_momentum_steps = teacher_momentum_steps

    def check_steps(self, max_steps):
        """A `ValueError` if a fade would overlap the next growth or (with `max_steps`) outlast the run, whose
        exported model would then differ from the masked one that was trained."""
        ends = [stage.step + self.fade_steps for stage in self.stages[1:]]
        limits = [stage.step for stage in self.stages[2:]] + ([max_steps] if max_steps is not None else [])
        for end, limit in zip(ends, limits):
            if self.fade_steps and end > limit:
                raise ValueError(f"a growth's fade of {self.fade_steps} steps ends at step {end}, after the next "
                                 f"growth or the run's end at {limit}; allowed: fade_steps that fit between them")

    def fade(self, model, step):
        """Set the growth masks of `model` (student and teacher backbones), which has taken `step` steps: the
        latest growth's new units weighed by `(step - growth step) / fade_steps`, none once faded in."""
        index = stage_at(self.stages, step)
        fraction = 1.0 if not index or not self.fade_steps else (step - self.stages[index].step) / self.fade_steps
        self._set_masks(model, index, fraction)

    def _set_masks(self, model, index, fraction):
        """Masks for the growth into stage `index` at `fraction` (set only when they change for this model)."""
        if (id(model), fraction) == self._masked:
            return
        masks = None
        if fraction < 1:
            device = next(model.student.parameters()).device
            masks = fade_masks(self.configs[index - 1], self.configs[index], fraction, device=device)
        for backbone in (model.student["backbone"], model.teacher["backbone"]):
            backbone.set_growth_masks(masks)
        self._masked = (id(model), fraction)

    def config_at(self, step):
        """The configuration of a model that has taken `step` steps."""
        return self.configs[stage_at(self.stages, step)]

    def due(self, step):
        """The configuration to grow into before step `step + 1`, or None."""
        return next((c for s, c in zip(self.stages[1:], self.configs[1:]) if s.step == step), None)

    def at(self, step, schedules):
        """The run's `SSLSchedules` values at `step` after the latest growth: the learning rate re-warmed linearly,
        and the teacher momentum restarted if `teacher_momentum` is set (with `teacher_heads_only`, the heads'
        only: the run's momentum is then `backbone_momentum`), back on the run's schedule after
        `teacher_momentum_steps` if set."""
        values = schedules.at(step)
        grown = [s.step for s in self.stages[1:] if s.step <= step]
        if not grown:
            return values
        since = step - grown[-1]
        values["lr"] *= min(1.0, (since + 1) / self.warmup_steps)
        if self.teacher_momentum is not None:
            if self.teacher_heads_only:
                values["backbone_momentum"] = values["momentum"]
            if self.teacher_momentum_steps is None:
                values["momentum"] = cosine_schedule(since, max(1, schedules.total_steps - grown[-1]),
                                                     self.teacher_momentum, schedules.final_momentum)
            else:  # the restart's weight falls from 1 to 0 over teacher_momentum_steps
                weight = cosine_schedule(since, self.teacher_momentum_steps, 1.0, 0.0)
                values["momentum"] = weight * self.teacher_momentum + (1 - weight) * values["momentum"]
        return values

    def apply(self, engine, model, batch, step, teacher_temperature, writer=None):
        """Grow engine and model before step `step + 1`; `batch` (its first micro-batch) measures the objective
        before and after -> `(engine, model)`."""
        target = self.due(step)
        before = _eval_loss(engine, batch, teacher_temperature)
        engine, model = grow_run(engine, model, target, self.ds_config, self.learning_rate, self.weight_decay,
                                 self.noise, self.seed + step, masked=self.fade_steps > 0)
        self._set_masks(model, stage_at(self.stages, step + 1), 0.0 if self.fade_steps else 1.0)
        after = _eval_loss(engine, batch, teacher_temperature)
        logger.info("growth at step %d: loss %.6g before, %.6g after", step, before, after)
        if writer is not None:
            for name, value in (("loss_before", before), ("loss_after", after), ("hidden_size", target.hidden_size),
                                ("num_hidden_layers", target.num_hidden_layers)):
                writer.add_scalar(f"growth/{name}", value, step)
        return engine, model
