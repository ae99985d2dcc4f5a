"""`launchers/pretrain.py` end to end: real processes through the DeepSpeed launcher, 2 ranks on CPU."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load, load_file
from transformers import AutoModel

import vidrop  # noqa: F401  (registers the Auto classes)
from vidrop.training.launch import deepspeed_command, free_port

ROOT = Path(__file__).resolve().parents[2]
TINY = ("hidden_size=48,num_hidden_layers=2,num_attention_heads=3,intermediate_size=96,num_frames=4,image_size=32,"
        "patch_size=8,small_crop_size=16,num_prototypes=64,num_patch_prototypes=64,head_hidden_size=64,"
        "head_bottleneck_size=32,drop_rate=0.5")



def _command(dataset, output_dir, *extra, stage=2, steps=6):
    return [*deepspeed_command(ROOT / "launchers" / "pretrain.py", num_gpus=2),
            "--train_dataset", str(dataset), "--output_dir", str(output_dir), "--config_overrides", TINY,
            "--deepspeed", str(ROOT / "ds_configs" / f"zero{stage}.json"), "--micro_batch_size", "2",
            "--max_steps", str(steps), "--save_steps", "2", "--logging_steps", "1", "--warmup_steps", "1", *extra]


def _run(command, cwd, env=None):
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, start_new_session=True, env=env)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result


def _weights(folder):
    return load_file(str(Path(folder) / "model.safetensors"))


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_each_zero_stage_trains_lowers_the_loss_and_exports(stage, compressed_dataset, labelled_dataset, tmp_path):
    output = tmp_path / "run"
    # stage 2 also probes the teacher at the end, at the clip sampling it trained with (stride 1, not the default 2)
    evaluation = ["--eval_dataset", str(labelled_dataset), "--frame_stride", "1"] if stage == 2 else []
    # stage 1 cuts its crops from other area ranges than the default, and keeps only its 2 newest checkpoints
    crops = ["--global_crop_scale", "0.6", "1.0", "--small_crop_scale", "0.2", "0.5"] if stage == 1 else []
    limit = ["--save_total_limit", "2"] if stage == 1 else []
    _run(_command(compressed_dataset, output, "--config_overrides", TINY + ",loss_type=mse", "--learning_rate",
                  "2e-3", *evaluation, *crops, *limit, stage=stage, steps=8), tmp_path)
    data_arguments = json.loads((output / "arguments.json").read_text())["data"]
    assert (data_arguments["global_crop_scale"], data_arguments["small_crop_scale"]) == (
        ([0.6, 1.0], [0.2, 0.5]) if crops else ([0.4, 1.0], [0.1, 0.4]))
    summary = json.loads((output / "summary.json").read_text())
    assert summary["steps"] == 8 and summary["clips_seen"] == 8 * 4 and summary["world_size"] == 2
    assert summary["clips_per_second"] > 0 and summary["config"]["loss_type"] == "mse"
    if evaluation:  # the teacher probed at the end: fitted on the 16 training videos, scored on the 32 others
        scores = json.loads((output / "eval.json").read_text())
        assert summary["eval"]["linear_probe_top1"] == scores["linear_probe_top1"]
        assert (scores["num_train_videos"], scores["num_eval_videos"]) == (16, 32)
        assert scores["arguments"]["model"] == str(output / "teacher")
        assert summary["config"]["frame_stride"] == scores["arguments"]["frame_stride"] == 1
        assert AutoModel.from_pretrained(output / "teacher").config.frame_stride == 1
    else:
        assert "eval" not in summary and not (output / "eval.json").exists()
    events = list((output / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    saved = sorted(p.name for p in (output / "checkpoints").glob("step-*"))  # one every 2 steps
    assert saved == (["step-00000006", "step-00000008"] if limit else [f"step-0000000{s}" for s in (2, 4, 6, 8)])
    states = sorted((output / "checkpoints" / saved[0]).glob("*model_states.pt"))  # names differ by stage
    first = torch.load(states[0], weights_only=False)
    assert first["global_step"] == int(saved[0][-1])
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars = EventAccumulator(str(events[0])).Reload()
    losses = [e.value for e in scalars.Scalars("train/loss")]
    assert len(losses) == 8 and losses[-1] < losses[0]
    for tag in ("schedule/lr", "schedule/momentum", "schedule/teacher_temperature", "schedule/weight_decay",
                "train/kept_tokens_per_clip", "speed/clips_per_second"):
        assert scalars.Scalars(tag), tag
    momentum = [e.value for e in scalars.Scalars("schedule/momentum")]  # the default: 0.99 -> 0.996, cosine
    assert momentum[0] == pytest.approx(0.99) and momentum == sorted(momentum) and momentum[-1] < 0.996
    for name in ("student", "teacher"):
        model = AutoModel.from_pretrained(output / name)
        assert type(model).__name__ == "VidropModel"
    if stage == 3:  # an offline export of the ZeRO-3 checkpoint equals the live export
        subprocess.run([sys.executable, str(ROOT / "launchers" / "export.py"), "--checkpoint", str(output),
                        "--output_dir", str(tmp_path / "offline")], check=True, capture_output=True)
        for name in ("student", "teacher"):
            live, offline = _weights(output / name), _weights(tmp_path / "offline" / name)
            assert set(live) == set(offline)
            assert all(torch.equal(live[k], offline[k]) for k in live), name


@pytest.mark.parametrize("stage", [2, 3])  # ZeRO-1 shares stage 2's optimizer and checkpoint code
def test_killed_run_resumes_to_the_uninterrupted_result(stage, compressed_dataset, tmp_path):
    reference = tmp_path / "reference"
    _run(_command(compressed_dataset, reference, stage=stage, steps=4), tmp_path)  # one epoch: 4 steps of 4 clips
    killed = tmp_path / "killed"
    process = subprocess.Popen(_command(compressed_dataset, killed, stage=stage, steps=4), cwd=tmp_path,
                               start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (killed / "checkpoints" / "step-00000002" / "complete").exists():
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (killed / "summary.json").exists(), "the run was killed before it finished"
    _run(_command(compressed_dataset, killed, "--resume", "True", stage=stage, steps=4), tmp_path)
    for name in ("student", "teacher"):
        a, b = _weights(reference / name), _weights(killed / name)
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert json.loads((killed / "summary.json").read_text())["final_loss"] == json.loads(
        (reference / "summary.json").read_text())["final_loss"]


def test_a_crash_while_saving_keeps_the_previous_checkpoint(tmp_path):
    from vidrop.training.checkpoint import newest_complete_tag

    root = tmp_path / "checkpoints"
    (root / "step-00000002").mkdir(parents=True)
    (root / "step-00000002" / "complete").write_text("2")
    (root / "step-00000004").mkdir()  # DeepSpeed files half written, no marker
    (root / "step-00000004" / "mp_rank_00_model_states.pt").write_bytes(b"truncated")
    assert newest_complete_tag(tmp_path) == "step-00000002"


def test_pruning_deletes_only_checkpoints_older_than_the_newest_complete_ones(tmp_path):
    from vidrop.training.checkpoint import newest_complete_tag, prune

    root = tmp_path / "checkpoints"
    for step, complete in ((2, True), (4, False), (6, True), (8, True), (10, False)):  # 4: killed; 10: being saved
        folder = root / f"step-{step:08d}"
        folder.mkdir(parents=True)
        (folder / "mp_rank_00_model_states.pt").write_bytes(b"state")
        if complete:
            (folder / "complete").write_text(str(step))
    assert prune(tmp_path, 3) == []
    assert prune(tmp_path, 2) == ["step-00000002", "step-00000004"]
    assert sorted(p.name for p in root.iterdir()) == ["step-00000006", "step-00000008", "step-00000010"]
    assert prune(tmp_path, 1) == ["step-00000006"] and newest_complete_tag(tmp_path) == "step-00000008"
    with pytest.raises(ValueError, match="allowed: >= 1"):
        prune(tmp_path, 0)


def test_bad_arguments_fail_before_any_work(compressed_dataset, tmp_path):
    script = str(ROOT / "launchers" / "pretrain.py")
    cases = [
        (["--train_dataset", str(tmp_path / "missing")], "does not exist"),
        (["--train_dataset", str(compressed_dataset), "--eval_dataset", str(tmp_path / "gone")], "eval_dataset="),
        (["--config_overrides", "drop_rate=2"], "drop_rate=2 is out of range"),
        (["--config_overrides", "dropp_rate=0.5"], "unknown VidropConfig fields"),
        (["--no_such_option", "1"], "no_such_option"),
        (["--config", str(tmp_path / "missing.yaml")], "cannot read the recipe"),
        (["--train_dataset", str(compressed_dataset), "--deepspeed", str(tmp_path / "none.json")], "cannot be read"),
        (["--train_dataset", str(compressed_dataset), "--save_total_limit", "0"],
         "--save_total_limit 0 is not allowed"),
    ]
    result = subprocess.run([sys.executable, script, "--output_dir", str(tmp_path / "out"), *cases[0][0]],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode != 0 and cases[0][1] in result.stderr, result.stderr[-2000:]
    # the other cases in one process (each would pay the imports again): the launcher's main, one call per case
    runner = f"""
import contextlib, io, json, runpy, sys
errors = []
for extra in {json.dumps([extra for extra, _ in cases[1:]])}:
    sys.argv = ["pretrain.py", "--output_dir", {str(tmp_path / "out")!r}, *extra]
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            runpy.run_path({script!r}, run_name="__main__")
        errors.append("no error")
    except BaseException as error:  # SystemExit from the argument parser, ValueError from the checks
        errors.append(stderr.getvalue() + repr(error))
print(json.dumps(errors))
"""
    result = subprocess.run([sys.executable, "-c", runner], capture_output=True, text=True, cwd=ROOT)
    errors = json.loads(result.stdout.strip().splitlines()[-1])
    for (extra, message), error in zip(cases[1:], errors):
        assert message in error, (extra, error[-2000:])
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_the_no_option_demo_runs_end_to_end(tmp_path):
    """`deepspeed launchers/pretrain.py` with its embedded default, shortened to 4 steps: builds the synthetic
    dataset in ./outputs, trains, checkpoints, exports and writes the summary."""
    command = ["deepspeed", "--master_port", str(free_port()), str(ROOT / "launchers" / "pretrain.py"),
               "--max_steps", "4", "--save_steps", "4"]
    _run(command, tmp_path)
    stats = json.loads((tmp_path / "outputs" / "data" / "synthetic" / "stats.json").read_text())
    assert stats["videos"] == 96 and stats["skipped"] == []
    summary = json.loads((tmp_path / "outputs" / "demo" / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["world_size"] == 1
    assert summary["config"]["num_frames"] == 8 and summary["config"]["image_size"] == 64
    assert summary["config"]["frame_stride"] == 4  # 29 of the synthetic videos' 32 frames per clip
    teacher = AutoModel.from_pretrained(tmp_path / "outputs" / "demo" / "teacher").eval()
    assert teacher.config.drop_path_rate == 0.1  # the student's stochastic depth, recorded; off in eval mode:
    clip = torch.randn(1, 8, 3, 64, 64)
    out = teacher(clip)
    assert out.last_hidden_state.shape == (1, 1 + 4 * 8 * 8, 192)
    torch.testing.assert_close(teacher(clip).last_hidden_state, out.last_hidden_state)


@pytest.mark.parametrize("recipe", sorted((ROOT / "recipes").glob("vit_*.yaml")), ids=lambda p: p.stem)
def test_recipes_parse_into_valid_configurations(recipe):
    from vidrop.training.arguments import parse_arguments

    model_args, data_args, train_args = parse_arguments(["--config", str(recipe), "--max_steps", "7"])
    config = model_args.vidrop_config()
    assert config.num_frames == 16 and config.image_size == 224 and config.hidden_size >= 384
    assert (config.mask_pattern, config.drop_path_rate) == ("random", 0.1)  # the paper's masks, DINO's depth drop
    assert (train_args.momentum, train_args.final_momentum) == (0.996, 1.0)  # DINO's EMA, for runs of many epochs
    assert train_args.max_steps == 7  # the command line overrides the recipe
    assert (ROOT / train_args.deepspeed).exists()


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(compressed_dataset, tmp_path):
    output = tmp_path / "run"
    _run(_command(compressed_dataset, output, steps=2), tmp_path)
    good = output / "checkpoints" / "step-00000002"
    before = {p.name: p.stat().st_mtime_ns for p in good.iterdir()}
    # an infinite learning rate from the resumed step on: the weights blow up, the next loss is not finite
    result = subprocess.run(_command(compressed_dataset, output, "--resume", "True", "--learning_rate", "inf", steps=6),
                            capture_output=True, text=True, cwd=tmp_path, start_new_session=True)
    assert result.returncode != 0
    log = result.stdout + result.stderr
    assert "non-finite loss at step 3" in log and "cls_loss=" in log and "step-00000002" in log, log[-3000:]
    assert {p.name: p.stat().st_mtime_ns for p in good.iterdir()} == before
    assert sorted(p.name for p in (output / "checkpoints").glob("step-*")) == ["step-00000002"]


def test_a_simulated_two_node_run_trains(compressed_dataset, tmp_path):
    """Two launchers, one per 'node' (hostfile, --no_ssh, --node_rank 0|1, master on 127.0.0.1)."""
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("nodeA slots=1\nnodeB slots=1\n")
    port, output = str(free_port()), tmp_path / "run"
    launchers = []
    for node in (0, 1):
        command = ["deepspeed", "--hostfile", str(hostfile), "--no_ssh", "--node_rank", str(node),
                   "--master_addr", "127.0.0.1", "--master_port", port,
                   *_command(compressed_dataset, output, steps=4)[5:]]
        launchers.append(subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          text=True, start_new_session=True))
    logs = [p.communicate(timeout=600)[0] for p in launchers]
    assert all(p.returncode == 0 for p in launchers), "\n".join(log[-2000:] for log in logs)
    summary = json.loads((output / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 4
    assert AutoModel.from_pretrained(output / "teacher") is not None


def test_inconsistent_engine_and_resume_settings_fail_before_training(compressed_dataset, tmp_path):
    script = str(ROOT / "launchers" / "pretrain.py")
    bad_json = tmp_path / "bad.json"
    bad_json.write_text(json.dumps({"train_batch_size": 64, "zero_optimization": {"stage": 2}}))
    result = subprocess.run([sys.executable, script, "--train_dataset", str(compressed_dataset), "--output_dir",
                             str(tmp_path / "a"), "--deepspeed", str(bad_json), "--micro_batch_size", "2"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode != 0 and "train_batch_size=64, but micro_batch_size=2" in result.stderr
    resumed = tmp_path / "b"
    (resumed / "checkpoints" / "step-00000002").mkdir(parents=True)
    (resumed / "checkpoints" / "step-00000002" / "complete").write_text("2")
    from vidrop import VidropConfig

    VidropConfig.from_preset("small").save_pretrained(resumed)  # trained with another model
    result = subprocess.run([sys.executable, script, "--train_dataset", str(compressed_dataset), "--output_dir",
                             str(resumed), "--resume", "True"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode != 0 and "another model configuration" in result.stderr
    result = subprocess.run([sys.executable, script, "--train_dataset", str(compressed_dataset), "--output_dir",
                             str(resumed)], capture_output=True, text=True, cwd=ROOT)  # a new run, forgetting --resume
    assert result.returncode != 0 and (
        f"output_dir {resumed} holds the checkpoints of an earlier run (newest step-00000002); allowed: --resume True"
        in result.stderr
    )
    assert (resumed / "checkpoints" / "step-00000002" / "complete").read_text() == "2"


def test_epochs_become_steps_from_the_dataset_size(compressed_dataset, tmp_path):
    output = tmp_path / "run"
    before = set(Path("/dev/shm").glob("deepspeed_allreduce_buffer_*"))
    _run(_command(compressed_dataset, output, "--num_epochs", "0.5"), tmp_path)  # 16 rows (videos), 4 clips per step
    assert json.loads((output / "summary.json").read_text())["steps"] == 2
    # DeepSpeed's CPU all-reduce buffers (69 MB of RAM each) are removed by every rank at the end
    assert set(Path("/dev/shm").glob("deepspeed_allreduce_buffer_*")) <= before
    from vidrop.training.loop import _steps_for_epochs

    with pytest.raises(ValueError, match="needs .*stats.json to count the rows"):
        _steps_for_epochs(tmp_path / "no-dataset", 2, 4)
    # an epoch is a clip per row: a video stored as segments counts each; older datasets have a row per video
    for totals, steps in (({"videos": 4, "rows": 12}, 3), ({"videos": 4}, 1)):
        (tmp_path / "segmented").mkdir(exist_ok=True)
        (tmp_path / "segmented" / "stats.json").write_text(json.dumps(totals))
        assert _steps_for_epochs(tmp_path / "segmented", 1, 4) == steps


def test_a_seconds_budget_stops_the_run_with_a_checkpoint_and_a_summary(compressed_dataset, tmp_path):
    output = tmp_path / "run"
    command = [sys.executable, str(ROOT / "launchers" / "pretrain.py"), "--train_dataset", str(compressed_dataset),
               "--output_dir", str(output), "--config_overrides", TINY, "--micro_batch_size", "2",
               "--max_steps", "100000", "--save_steps", "100000", "--max_seconds", "2"]
    _run(command, tmp_path)
    summary = json.loads((output / "summary.json").read_text())
    assert summary["stopped_by"] == "max_seconds" and 0 < summary["steps"] < 100000
    assert summary["train_seconds"] >= 2
    assert (output / "checkpoints" / f"step-{summary['steps']:08d}" / "complete").exists()
    assert (output / "teacher" / "model.safetensors").exists()


def _small_source(kind, folder):
    """A random-weight VideoMAE (16-frame 48^2 grid, unlike the 4 x 32^2 training clips) or V-JEPA 2 folder."""
    from transformers import VideoMAEConfig, VideoMAEForPreTraining, VJEPA2Config, VJEPA2Model

    torch.manual_seed(0)
    if kind == "videomae":
        config = VideoMAEConfig(image_size=48, patch_size=8, num_frames=8, hidden_size=48, num_hidden_layers=2,
                                num_attention_heads=3, intermediate_size=96, decoder_hidden_size=32,
                                decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
                                decoder_intermediate_size=64)
        VideoMAEForPreTraining(config).save_pretrained(folder)
    else:
        config = VJEPA2Config(crop_size=32, patch_size=8, frames_per_clip=4, hidden_size=48, num_hidden_layers=2,
                              num_attention_heads=3, mlp_ratio=2.0, pred_hidden_size=24, pred_num_hidden_layers=1,
                              pred_num_attention_heads=2)
        VJEPA2Model(config).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("kind", ["videomae", "vjepa2"])
def test_continued_pretraining_from_videomae_and_vjepa2(kind, compressed_dataset, tmp_path):
    """VideoMAE converted by `launchers/convert.py`, V-JEPA 2 given as its own folder: both train under ZeRO-2,
    keep the source's architecture and position scheme, and the teacher starts from the source's weights."""
    source = _small_source(kind, tmp_path / "source")
    init_from = source
    if kind == "videomae":
        init_from = tmp_path / "converted"
        subprocess.run([sys.executable, str(ROOT / "launchers" / "convert.py"), "--from_pretrained", str(source),
                        "--source", kind, "--output_dir", str(init_from)], check=True, capture_output=True)
    output = tmp_path / "run"
    ssl_fields = ("num_frames=4,image_size=32,small_crop_size=16,num_prototypes=64,num_patch_prototypes=64,"
                  "head_hidden_size=64,head_bottleneck_size=32,drop_rate=0.5")
    _run(_command(compressed_dataset, output, "--init_from", str(init_from), "--config_overrides", ssl_fields,
                  steps=4), tmp_path)
    teacher = AutoModel.from_pretrained(output / "teacher")
    assert (teacher.config.num_frames, teacher.config.image_size, teacher.config.hidden_size) == (4, 32, 48)
    expected = ("sincos_1d", [4, 6, 6]) if kind == "videomae" else ("rope_3d", [2, 4, 4])
    assert (teacher.config.position_embedding_type, teacher.config.position_embedding_grid) == expected
    from vidrop.conversion import convert

    start = convert(source)[0].state_dict()
    name = "encoder.layer.1.mlp.fc2.weight"
    moved = (teacher.state_dict()[name] - start[name]).abs().max()
    assert 0 < moved < 0.1 * start[name].abs().max()  # trained a little, from the source's weights


def test_init_from_keeps_its_architecture(tmp_path, tiny_config):
    from vidrop.training.arguments import ModelArguments

    vidrop.VidropModel(tiny_config(position_embedding_type="learned")).save_pretrained(tmp_path / "small")
    config = ModelArguments(init_from=str(tmp_path / "small")).vidrop_config()  # the demo's overrides do not apply
    small = tiny_config(position_embedding_type="learned")
    fields = ("num_hidden_layers", "hidden_size", "num_frames", "image_size", "patch_size", "num_prototypes",
              "position_embedding_grid")
    assert [getattr(config, k) for k in fields] == [getattr(small, k) for k in fields]
    assert ModelArguments(init_from=str(tmp_path / "small"), config_overrides="hidden_size=48,drop_rate=0.9") \
        .vidrop_config().drop_rate == 0.9  # an architecture field at its own value is fine
    with pytest.raises(ValueError, match=r"changes hidden_size, num_hidden_layers of the --init_from model"):
        ModelArguments(init_from=str(tmp_path / "small"), config_overrides="hidden_size=96,num_hidden_layers=3") \
            .vidrop_config()


def test_the_demo_drops_tubes_masks_the_later_tubelets_and_has_the_recipes_stochastic_depth():
    from vidrop.training.arguments import ModelArguments

    for demo in (ModelArguments(), ModelArguments(frame_stride=2)):
        config = demo.vidrop_config()
        assert (config.drop_pattern, config.mask_pattern, config.drop_path_rate) == ("tube", "future", 0.1)
    for preset in ("tiny", "base"):  # a bare preset: none of them
        config = ModelArguments(preset=preset, config_overrides="").vidrop_config()
        assert (config.drop_pattern, config.mask_pattern, config.drop_path_rate) == ("random", "random", 0.0)


def test_the_demo_teacher_follows_the_student_to_the_end():
    from vidrop.training.arguments import parse_arguments

    _, _, train_args = parse_arguments([])
    assert train_args.final_momentum == 0.996  # the recipes keep DINO's 1.0 (test_recipes_parse_into_...)


def test_the_frame_stride_is_part_of_the_configuration(tmp_path, tiny_config):
    from vidrop.training.arguments import ModelArguments

    assert ModelArguments().vidrop_config().frame_stride == 4  # the demo's
    assert ModelArguments(frame_stride=2).vidrop_config().frame_stride == 2
    assert ModelArguments(frame_stride=1).vidrop_config().num_frames == 8  # the demo's other fields stay
    assert ModelArguments(config_overrides="frame_stride=3").vidrop_config().frame_stride == 3
    assert ModelArguments(frame_stride=1, config_overrides="frame_stride=3").vidrop_config().frame_stride == 1
    vidrop.VidropModel(tiny_config(frame_stride=3)).save_pretrained(tmp_path / "small")
    assert ModelArguments(init_from=str(tmp_path / "small")).vidrop_config().frame_stride == 3  # the model's own
    assert ModelArguments(init_from=str(tmp_path / "small"), frame_stride=1).vidrop_config().frame_stride == 1
    with pytest.raises(ValueError, match="frame_stride=0 is not allowed"):
        tiny_config(frame_stride=0)


def test_a_run_pushes_its_checkpoints_and_its_teacher_to_the_hub(compressed_dataset, tmp_path):
    from hub_server import HubServer

    from vidrop.ablation.runner import SPEC_FILE, AblationArguments, run_spec
    from vidrop.ablation.studies import Variant

    (tmp_path / "run").mkdir()  # as the ablation runner does: the variant's spec first, then the run
    variant = Variant(axis="drop_rate", value=0.5, config={"drop_rate": 0.5})
    spec = run_spec(AblationArguments(config_overrides=TINY), variant, seed=0)
    (tmp_path / "run" / SPEC_FILE).write_text(json.dumps(spec))
    with HubServer(token="hf_runToken") as hub:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        env.update(HF_ENDPOINT=hub.url, HF_TOKEN="hf_runToken", HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_XET="1")
        result = _run(_command(compressed_dataset, tmp_path / "run", "--push_to_hub", "tester/run",
                               "--push_checkpoints_to", "checkpoints", steps=4), tmp_path, env)
        assert "hf_runToken" not in result.stdout + result.stderr
        repo = hub.repos[("models", "tester/run")]
        assert repo.log == [("checkpoints", "ViDROP teacher at step 2"), ("checkpoints", "ViDROP teacher at step 4"),
                            ("main", "ViDROP teacher after 4 steps")]
        files = hub.files("tester/run")
        assert {"model.safetensors", "config.json", "modeling_vidrop.py", "README.md", "summary.json"} <= set(files)
        assert files["model.safetensors"] == (tmp_path / "run" / "teacher" / "model.safetensors").read_bytes()
        assert files["summary.json"] == (tmp_path / "run" / "summary.json").read_bytes()
        card = files["README.md"].decode()
        assert "| steps | 4 |" in card and "| ranks | 2 |" in card and str(compressed_dataset) in card
        assert f"| ablation variant | `{variant.name}` (drop_rate = 0.5, seed 0) |" in card
        assert not any(b"hf_runToken" in data for data in files.values())
        # a run without its export: push_to_hub.py exports the newest checkpoint on the fly (a dry run here)
        for name in ("teacher", "student"):
            shutil.rmtree(tmp_path / "run" / name)
        _run([sys.executable, str(ROOT / "launchers" / "push_to_hub.py"), "--checkpoint", str(tmp_path / "run"),
              "--repo_id", "tester/run", "--dry_run", str(tmp_path / "staged")], tmp_path, env)
        pushed = load(files["model.safetensors"])
        staged = _weights(tmp_path / "staged")
        assert set(pushed) == set(staged) and all(torch.equal(pushed[k], staged[k]) for k in pushed)


@pytest.mark.parametrize("stage, resume_from, fade_steps", [(2, 2, 0), (3, 3, 0), (2, 3, 2)])
def test_growth_during_a_run_preserves_the_loss_and_resumes_across_it(stage, resume_from, fade_steps,
                                                                      compressed_dataset, tmp_path):
    """A 2-rank run grows at step 2 (48 -> 96 wide, 2 -> 3 blocks, 6 heads, MLP 192): the objective on the same
    batch moves by less than 1%, and a run resumed from the checkpoint at the growth step, which holds the model
    before it (ZeRO-2), or from one after it (ZeRO-3; by masks, ZeRO-2 half-way through the fade, with the teacher
    momentum restarted for its heads only and re-warmed over 2 steps) ends with the uninterrupted run's weights."""
    (tmp_path / "small.json").write_text(json.dumps(dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3,
                                                         intermediate_size=96)))
    (tmp_path / "grown.json").write_text(json.dumps(dict(hidden_size=96, num_hidden_layers=3, num_attention_heads=6,
                                                         intermediate_size=192)))
    growth = ["--growth_schedule", f"{tmp_path / 'small.json'}:0,{tmp_path / 'grown.json'}:2", "--save_steps", "1",
              "--growth_teacher_momentum", "0.5", "--growth_fade_steps", str(fade_steps)]
    heads_only = fade_steps > 0
    if heads_only:  # and back on the run's schedule over 2 steps
        growth += ["--growth_teacher_heads_only", "True", "--growth_teacher_momentum_steps", "2"]
    reference = tmp_path / "reference"
    _run(_command(compressed_dataset, reference, *growth, stage=stage, steps=4), tmp_path)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars = EventAccumulator(str(reference / "tensorboard")).Reload()
    before, after = scalars.Scalars("growth/loss_before")[0], scalars.Scalars("growth/loss_after")[0]
    assert before.step == 2 and abs(after.value - before.value) < 0.01 * abs(before.value)
    momentum = {e.step: e.value for e in scalars.Scalars("schedule/momentum")}  # logged after the step it served
    assert momentum[2] > 0.99 and momentum[3] == pytest.approx(0.5)
    assert 0.5 < momentum[4] < 1.0
    backbone = {e.step: e.value for e in scalars.Scalars("schedule/backbone_momentum")} if heads_only else {}
    assert not heads_only or (backbone[3] > 0.99 and backbone[4] > backbone[3])
    assert not heads_only or momentum[4] == pytest.approx((0.5 + backbone[4]) / 2)  # half-way back
    teacher = AutoModel.from_pretrained(reference / "teacher")
    shape = (teacher.config.hidden_size, teacher.config.num_hidden_layers, teacher.config.intermediate_size)
    assert shape == (96, 3, 192)
    summary = json.loads((reference / "summary.json").read_text())
    assert summary["config"]["hidden_size"] == 96 and summary["steps"] == 4
    resumed = tmp_path / "resumed"  # as if killed right after the checkpoint `resume_from`
    shutil.copytree(reference, resumed, ignore=shutil.ignore_patterns("student", "teacher", "summary.json"))
    for tag in (resumed / "checkpoints").glob("step-*"):
        if int(tag.name.split("-")[1]) > resume_from:
            shutil.rmtree(tag)
    _run(_command(compressed_dataset, resumed, *growth, "--resume", "True", stage=stage, steps=4), tmp_path)
    for name in ("student", "teacher"):
        a, b = _weights(reference / name), _weights(resumed / name)
        assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a), name


def test_after_a_growth_the_learning_rate_and_optionally_the_teacher_momentum_re_warm():
    """Before the growth the run's schedule is untouched; after it the learning rate ramps back over
    `warmup_steps`, and with `teacher_momentum` the EMA momentum restarts there and rises to its final value at the
    last step, or with `teacher_momentum_steps` returns to the run's schedule over those steps; without it the
    run's momentum goes on."""
    from vidrop.training.growth import RunGrowth
    from vidrop.training.schedules import SSLSchedules

    base = vidrop.VidropConfig.from_preset("tiny", num_frames=4, image_size=32, patch_size=8, small_crop_size=16)
    schedules = SSLSchedules(total_steps=100, learning_rate=1e-3, momentum=0.99)
    growth = RunGrowth("tiny:0,small:40", base, None, 1e-3, 0.04, warmup_steps=4, teacher_momentum=0.9)
    kept = RunGrowth("tiny:0,small:40", base, None, 1e-3, 0.04, warmup_steps=4)
    for step in (0, 39):
        assert growth.at(step, schedules) == schedules.at(step)
    lrs = [growth.at(step, schedules)["lr"] / schedules.at(step)["lr"] for step in range(40, 46)]
    assert lrs == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    momenta = [growth.at(step, schedules)["momentum"] for step in range(40, 101)]
    assert momenta[0] == pytest.approx(0.9) and momenta[-1] == 1.0
    assert all(a < b for a, b in zip(momenta, momenta[1:]))
    assert momenta[30] == pytest.approx(0.95)  # half-way through the steps left, half-way up the cosine
    assert all(kept.at(s, schedules)["momentum"] == schedules.at(s)["momentum"] for s in range(101))
    assert all("backbone_momentum" not in growth.at(s, schedules) for s in range(101))
    heads = RunGrowth("tiny:0,small:40", base, None, 1e-3, 0.04, teacher_momentum=0.9, teacher_heads_only=True)
    assert heads.at(39, schedules) == schedules.at(39)  # before the growth: one momentum, the run's
    for step in (40, 70, 100):  # after it: the heads restarted, the backbone on the run's schedule
        values = heads.at(step, schedules)
        assert values["momentum"] == growth.at(step, schedules)["momentum"]
        assert values["backbone_momentum"] == schedules.at(step)["momentum"]
    rewarm = RunGrowth("tiny:0,small:40", base, None, 1e-3, 0.04, teacher_momentum=0.9, teacher_momentum_steps=20)
    assert rewarm.at(39, schedules) == schedules.at(39)
    momenta = [rewarm.at(step, schedules)["momentum"] for step in range(40, 101)]
    run = [schedules.at(step)["momentum"] for step in range(40, 101)]
    assert momenta[0] == pytest.approx(0.9) and all(a < b for a, b in zip(momenta[:21], momenta[1:21]))
    assert momenta[10] == pytest.approx((0.9 + run[10]) / 2)  # half-way through the re-warm, half-way back
    assert momenta[20:] == pytest.approx(run[20:], abs=0)  # then the run's schedule, as without a restart
    with pytest.raises(ValueError, match="allowed: None, or 1 or more steps with a teacher_momentum"):
        RunGrowth("tiny:0,small:40", base, None, 1e-3, 0.04, teacher_momentum_steps=20)
    with pytest.raises(ValueError, match="allowed: None, or a value in"):
        RunGrowth("tiny:0,small:40", base, None, 1e-3, 0.04, teacher_momentum=1.5)
    with pytest.raises(ValueError, match="allowed: teacher_heads_only with a teacher_momentum"):
        RunGrowth("tiny:0,small:40", base, None, 1e-3, 0.04, teacher_heads_only=True)


def test_a_growth_by_masks_fades_its_new_units_in_over_its_steps():
    """The growth masks follow the step (so that a resumed run sets them again): none before the growth, the new
    units at `(step - 40) / fade_steps` after it, none once faded in; a fade must fit before the next growth and
    the run's end."""
    from vidrop.ssl import SelfDistillation
    from vidrop.training.growth import RunGrowth

    base = vidrop.VidropConfig.from_preset("tiny", num_frames=4, image_size=32, patch_size=8, small_crop_size=16)
    growth = RunGrowth("tiny:0,small:40", base, None, 1e-3, 0.04, fade_steps=8)
    grown = SelfDistillation(growth.configs[1])
    for step, fraction in ((41, 1 / 8), (44, 0.5), (47, 7 / 8), (48, None), (60, None)):
        growth.fade(grown, step)
        for backbone in (grown.student["backbone"], grown.teacher["backbone"]):
            norm = backbone.encoder.layer[0].norm1.growth_mask
            if fraction is None:
                assert norm is None and backbone.encoder.layer[0].mlp.growth_mask is None
            else:  # 192 old channels of 384; MLP 768 of 1536; heads of 64, 3 of 6
                assert norm[:192].eq(1).all() and norm[192:].eq(fraction).all()
                assert backbone.encoder.layer[0].mlp.growth_mask[768:].eq(fraction).all()
                assert backbone.encoder.layer[0].attention.growth_mask[3:].eq(fraction).all()
    small = SelfDistillation(growth.configs[0])
    growth.fade(small, 40)  # the growth at 40 has not happened yet: nothing to mask
    assert small.student["backbone"].encoder.layer[0].norm1.growth_mask is None
    growth.check_steps(48)
    with pytest.raises(ValueError, match="fade of 8 steps ends at step 48, after the next growth or the run's end "
                                         "at 45"):
        growth.check_steps(45)
    with pytest.raises(ValueError, match="ends at step 48, after the next growth or the run's end at 44"):
        RunGrowth("tiny:0,small:40,base:44", base, None, 1e-3, 0.04, fade_steps=8)
    with pytest.raises(ValueError, match="allowed: 0 \\(growth by copies\\) or more steps"):
        RunGrowth("tiny:0,small:40", base, None, 1e-3, 0.04, fade_steps=-1)


def test_a_growth_schedule_gives_every_stage_its_configuration(tmp_path):
    from vidrop.ssl import SelfDistillation
    from vidrop.training.growth import parse_growth_schedule, stage_at, stage_configs

    (tmp_path / "half.json").write_text(json.dumps(dict(hidden_size=96, num_hidden_layers=3, num_attention_heads=3,
                                                        intermediate_size=384)))
    stages = parse_growth_schedule(f"{tmp_path / 'half.json'}:0,tiny:20,small:50")
    base = vidrop.VidropConfig.from_preset("base", num_frames=4, image_size=32, patch_size=8, small_crop_size=16)
    configs = stage_configs(base, stages)
    assert [(c.hidden_size, c.num_hidden_layers, c.num_attention_heads) for c in configs] == [
        (96, 3, 3), (192, 12, 3), (384, 12, 6)]
    assert [c.position_embedding_dim for c in configs] == [96, 96, 96]  # the first shape's table, projected after
    assert SelfDistillation(configs[2]).student["backbone"].embeddings.position_projection.shape == (384, 96)
    assert [stage_at(stages, step) for step in (0, 1, 20, 21, 50, 51)] == [0, 0, 0, 1, 1, 2]
    for bad, message in (("tiny:5", "a first shape at step 0"), ("small:0,tiny:10", "smaller shape"),
                         ("tiny:0,tiny", "is not 'shape:step'"), ("giant:0", "neither a preset")):
        with pytest.raises(ValueError, match=message):
            stage_configs(base, parse_growth_schedule(bad))
