"""Export the student and teacher backbones as Hugging Face folders (safetensors), from a live engine under
any ZeRO stage or from a checkpoint on disk."""

from pathlib import Path

import torch.distributed as dist
from deepspeed.utils import safe_get_full_fp32_param
from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
from safetensors.torch import load_file

from ..models import VidropConfig, VidropModel
from .checkpoint import TEACHER_FILE, checkpoint_root


def _save_backbone(config, state_dict, folder):
    backbone = VidropModel(config)
    backbone.load_state_dict(state_dict)
    backbone.save_pretrained(folder)


def export_from_engine(model, output_dir):
    """Write `output_dir/student` and `output_dir/teacher` (rank 0) from a live engine's module; call on every
    rank (the student's weights are gathered from their fp32 masters, a collective under ZeRO-3)."""
    student = {}
    for name, param in model.student["backbone"].named_parameters():
        master = safe_get_full_fp32_param(param)  # None without an fp32 master: the parameter is the weight
        shape = getattr(param, "ds_shape", param.shape)  # ZeRO-3 keeps the full shape aside
        student[name] = (param.detach() if master is None else master).float().cpu().reshape(shape).clone()
    for name, buffer in model.student["backbone"].named_buffers():  # fixed, whole on every rank
        student[name] = buffer.detach().float().cpu().clone()
    if dist.get_rank() == 0:
        _save_backbone(model.config, student, Path(output_dir) / "student")
        model.teacher["backbone"].save_pretrained(Path(output_dir) / "teacher")
    dist.barrier()


def export_from_checkpoint(checkpoint_dir, tag, output_dir):
    """Offline export from `checkpoint_dir` (a run's `output_dir`) at `tag`, in one CPU process, any stage."""
    root = checkpoint_root(checkpoint_dir)
    grown = (root / tag / "config.json").is_file()  # each checkpoint records its shape; older ones only the run's
    config = VidropConfig.from_pretrained(root / tag if grown else Path(checkpoint_dir))
    state = get_fp32_state_dict_from_zero_checkpoint(str(root), tag=tag)
    prefix = "student.backbone."
    student = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    _save_backbone(config, student, Path(output_dir) / "student")
    saved = load_file(str(root / tag / TEACHER_FILE))
    prefix = "backbone."
    teacher = {k[len(prefix):]: v for k, v in saved.items() if k.startswith(prefix)}
    _save_backbone(config, teacher, Path(output_dir) / "teacher")
