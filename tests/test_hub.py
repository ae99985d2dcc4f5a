"""Pushing models and datasets to a real HTTP server on 127.0.0.1 that speaks the Hub's endpoints
(`tests/hub_server.py`), through the launchers, and loading them back in fresh processes."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hub_server import HubServer

from vidrop import VidropModel

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "hf_vidropTestToken0123456789"
MODEL_FILES = {"model.safetensors", "config.json", "configuration_vidrop.py", "modeling_vidrop.py", "README.md"}


@pytest.fixture
def hub():
    with HubServer(token=TOKEN) as server:
        yield server


def _env(hub, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    return {**env, "HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN, "HF_HOME": str(tmp_path / "hf-home"),
            "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


def _launch(script, hub, tmp_path, *args, check=True):
    result = subprocess.run([sys.executable, str(ROOT / "launchers" / script), *map(str, args)], capture_output=True,
                            text=True, env=_env(hub, tmp_path), cwd=tmp_path)
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _digest(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.fixture
def model_folder(tiny_config, tmp_path):
    torch.manual_seed(0)
    VidropModel(tiny_config(drop_rate=0.5)).save_pretrained(tmp_path / "model")
    return tmp_path / "model"


def test_a_pushed_model_loads_where_vidrop_is_not_installed(hub, model_folder, tmp_path):
    staged = tmp_path / "staged"
    _launch("push_to_hub.py", hub, tmp_path, "--checkpoint", model_folder, "--repo_id", "tester/tiny", "--dry_run",
            staged)
    assert hub.requests == []  # a dry run asks the Hub nothing
    result = _launch("push_to_hub.py", hub, tmp_path, "--checkpoint", model_folder, "--repo_id", "tester/tiny",
                     "--private", "--commit_message", "first weights")
    assert TOKEN not in result.stdout + result.stderr
    _launch("push_to_hub.py", hub, tmp_path, "--checkpoint", model_folder, "--repo_id", "tester/tiny", "--revision",
            "dev")
    repo = hub.repos[("models", "tester/tiny")]
    assert repo.private and repo.log == [("main", "first weights"), ("dev", "Upload ViDROP model")]
    assert hub.files("tester/tiny", revision="dev") == hub.files("tester/tiny")
    files = hub.files("tester/tiny")
    assert set(files) == MODEL_FILES
    assert {name: hashlib.sha256(data).hexdigest() for name, data in files.items()} == _digest(staged)
    config = json.loads(files["config.json"])
    assert config["auto_map"] == {"AutoConfig": "configuration_vidrop.VidropConfig",
                                  "AutoModel": "modeling_vidrop.VidropModel"}
    card = files["README.md"].decode()
    assert "license: apache-2.0" in card and 'AutoModel.from_pretrained("tester/tiny", trust_remote_code=True)' in card
    assert f"clips (one frame in {config['frame_stride']} of the video)" in card  # how to sample clips for it
    assert not any(TOKEN.encode() in data for data in files.values())
    # a fresh process in which `import vidrop` fails loads it with the pushed code and computes the same outputs
    loader = f"""
import sys
sys.modules["vidrop"] = None  # not importable
import torch
from transformers import AutoModel
model = AutoModel.from_pretrained("tester/tiny", trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
clips = torch.randn(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
keep = torch.tensor([[0, 3, 5, 9], [1, 2, 30, 31]])
outputs = [model(clips).last_hidden_state, model(clips, keep_indices=keep).last_hidden_state]
torch.save(outputs, {str(tmp_path / "out.pt")!r})
"""
    result = subprocess.run([sys.executable, "-c", loader], capture_output=True, text=True, env=_env(hub, tmp_path),
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    dense, sparse = torch.load(tmp_path / "out.pt")
    model = VidropModel.from_pretrained(model_folder).eval()
    clips = torch.randn(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(dense, model(clips).last_hidden_state)
    keep = torch.tensor([[0, 3, 5, 9], [1, 2, 30, 31]])
    assert torch.equal(sparse, model(clips, keep_indices=keep).last_hidden_state)


@pytest.mark.parametrize("status, advice", [
    (401, "the token was refused"),
    (403, "the token may not write to tester/tiny"),
    (500, "the Hub failed; nothing was changed locally"),
])
def test_a_refused_push_is_a_clear_error_and_leaves_local_files(status, advice, hub, model_folder, tmp_path):
    before = _digest(model_folder)
    hub.refuse = status
    result = _launch("push_to_hub.py", hub, tmp_path, "--checkpoint", model_folder, "--repo_id", "tester/tiny",
                     check=False)
    assert result.returncode != 0
    assert f"pushing a model to tester/tiny failed with HTTP {status}: {advice}" in result.stderr
    assert "Traceback" not in result.stderr and TOKEN not in result.stdout + result.stderr
    assert _digest(model_folder) == before


def test_a_wrong_token_is_refused(hub, model_folder, tmp_path):
    env = {**_env(hub, tmp_path), "HF_TOKEN": "hf_wrong"}
    result = subprocess.run([sys.executable, str(ROOT / "launchers" / "push_to_hub.py"), "--checkpoint",
                             str(model_folder), "--repo_id", "tester/tiny"], capture_output=True, text=True, env=env)
    assert result.returncode != 0 and "HTTP 401: the token was refused" in result.stderr
    assert not hub.repos


def test_a_compressed_dataset_is_pushed_and_streamed_back(hub, synthetic_videos, compressed_dataset, tmp_path):
    videos = tmp_path / "videos"
    (videos / "a").mkdir(parents=True)
    for video in sorted(Path(synthetic_videos).rglob("*.mp4"))[:3]:
        (videos / "a" / video.name).write_bytes(video.read_bytes())
    _launch("compress.py", hub, tmp_path, "--input_dir", videos, "--output_dir", tmp_path / "ds", "--clip_frames", 4,
            "--push_to_hub", "tester/motions")
    files = hub.files("tester/motions", kind="datasets")
    assert set(files) == {"README.md", "stats.json", "data/train-00000.parquet"}
    assert files["stats.json"] == (tmp_path / "ds" / "stats.json").read_bytes()
    # push_to_hub.py --dataset: a dry run stages the same kind of files; a push then streams back into the loader
    _launch("push_to_hub.py", hub, tmp_path, "--dataset", compressed_dataset, "--repo_id", "tester/synthetic",
            "--dry_run", tmp_path / "staged")
    assert set(_digest(tmp_path / "staged")) == {p for p in _digest(compressed_dataset)
                                                 if p.endswith(".parquet") or p in ("README.md", "stats.json")}
    _launch("push_to_hub.py", hub, tmp_path, "--dataset", compressed_dataset, "--repo_id", "tester/synthetic")
    reader = f"""
import json
from vidrop.data import ClipStream, MultiCrop
crop = MultiCrop(global_size=32, num_small_crops=0, num_global_crops=1, flip_probability=0.0)
for source in ("tester/synthetic", {str(compressed_dataset)!r}):
    stream = ClipStream(source, crop, num_frames=4, seed=0, shuffle_buffer=0)
    print(json.dumps([[e["video_id"], float(e["global_views"].sum())] for e in stream]))
"""
    result = subprocess.run([sys.executable, "-c", reader], capture_output=True, text=True,
                            env=_env(hub, tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    from_hub, local = (json.loads(line) for line in result.stdout.strip().splitlines()[-2:])
    assert len(from_hub) == len(local) > 0 and from_hub == local


def test_a_source_checkpoint_on_the_hub_is_converted_by_repo_id(hub, tmp_path):
    """`launchers/convert.py --from_pretrained REPO` fetches a VideoMAE repo and converts it."""
    from transformers import VideoMAEConfig, VideoMAEModel

    torch.manual_seed(0)
    source = VideoMAEModel(VideoMAEConfig(image_size=32, patch_size=8, num_frames=4, hidden_size=48,
                                          num_hidden_layers=2, num_attention_heads=3, intermediate_size=96)).eval()
    source.save_pretrained(tmp_path / "videomae")
    upload = (
        f"from huggingface_hub import HfApi; HfApi().upload_folder(folder_path={str(tmp_path / 'videomae')!r}, "
        "repo_id='tester/videomae', repo_type='model', create_pr=False) "
        "if HfApi().create_repo('tester/videomae') else 0"
    )
    result = subprocess.run([sys.executable, "-c", upload], capture_output=True, text=True, env=_env(hub, tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    _launch("convert.py", hub, tmp_path, "--from_pretrained", "tester/videomae", "--source", "videomae",
            "--output_dir", tmp_path / "converted", "--no_cls_token")
    converted = VidropModel.from_pretrained(tmp_path / "converted").eval()
    clips = torch.randn(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(converted(clips).last_hidden_state, source(clips).last_hidden_state, rtol=1e-5,
                               atol=1e-5)
