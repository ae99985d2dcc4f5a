"""The EMA teacher under DeepSpeed ZeRO-1, 2 and 3: real processes through the launcher, 2 ranks on CPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from vidrop.training.launch import deepspeed_command

WORKER = Path(__file__).with_name("ema_worker.py")



@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The same training in one plain process on the whole global batch."""
    output = tmp_path_factory.mktemp("reference") / "run"
    subprocess.run([sys.executable, str(WORKER), "--output", str(output)], check=True, capture_output=True)
    return load_file(f"{output}.safetensors"), json.loads(Path(f"{output}.json").read_text())


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_teacher_under_zero_matches_the_single_process_reference(stage, reference, tmp_path):
    output = tmp_path / "run"
    command = [*deepspeed_command(WORKER, num_gpus=2),
               "--stage", str(stage), "--output", str(output)]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    teacher, log = load_file(f"{output}.safetensors"), json.loads(Path(f"{output}.json").read_text())
    reference_teacher, reference_log = reference
    assert set(teacher) == set(reference_teacher)
    for name, value in reference_teacher.items():
        assert (teacher[name] - value).abs().max() < 1e-5, name
    assert log["losses"] == pytest.approx(reference_log["losses"], rel=1e-5)
    assert log["losses"][-1] < log["losses"][0]  # it trains


def test_momentum_out_of_range_is_refused(tiny_config):
    from vidrop.ssl import SelfDistillation
    from vidrop.training.ema import update_teacher_from_engine

    with pytest.raises(ValueError, match=r"momentum=-0.1 is out of range; allowed: \[0, 1\]"):
        update_teacher_from_engine(SelfDistillation(tiny_config()), -0.1)


def test_the_backbone_can_follow_its_own_momentum(tiny_config):
    """After a growth that restarts the heads' momentum only, the teacher's heads and backbone move at their own
    rates towards the student."""
    import torch

    from vidrop.ssl import SelfDistillation
    from vidrop.training.ema import update_teacher_from_engine

    model = SelfDistillation(tiny_config())
    with torch.no_grad():
        for teacher_param, student_param in zip(model.teacher.parameters(), model.student.parameters()):
            teacher_param.zero_()
            student_param.fill_(1.0)
    update_teacher_from_engine(model, 0.9, backbone_momentum=0.5)
    moved = {name: float(param.mean()) for name, param in model.teacher.named_parameters()}
    assert {name.split(".")[0] for name in moved} == {"backbone", "cls_head", "patch_head"}
    for name, value in moved.items():
        assert value == pytest.approx(0.5 if name.startswith("backbone.") else 0.1), name
    update_teacher_from_engine(model, 0.9)  # one momentum for all
    assert float(model.teacher["backbone"].embeddings.cls_token.mean()) == pytest.approx(0.55)
    with pytest.raises(ValueError, match=r"backbone_momentum=1.5 is out of range; allowed: \[0, 1\]"):
        update_teacher_from_engine(model, 0.9, backbone_momentum=1.5)


def test_ds_configs_are_concrete_and_clip_explicitly():
    configs = sorted((Path(__file__).resolve().parents[2] / "ds_configs").glob("*.json"))
    assert [c.name for c in configs] == ["zero1.json", "zero2.json", "zero3.json", "zero3_offload.json"]
    for path in configs:
        text = path.read_text()
        assert '"auto"' not in text, path.name  # raw deepspeed.initialize rejects "auto"
        config = json.loads(text)
        assert config["gradient_clipping"] > 0, path.name  # DeepSpeed would silently clip at 1.0 otherwise
        assert "train_batch_size" not in config  # derived from micro batch x accumulation x ranks
    assert json.loads(configs[3].read_text())["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
