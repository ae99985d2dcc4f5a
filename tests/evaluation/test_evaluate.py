"""Frozen features of real compressed shards and the evaluation entry points (API, launcher, eval.json)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vidrop import VidropModel
from vidrop.data import MOTIONS
from vidrop.evaluation import EvalArguments, evaluate, extract_features, vidrop_features
from vidrop.evaluation.features import eval_clip_starts, pool_features, square_crop_boxes

ROOT = Path(__file__).resolve().parents[2]


def test_clips_spread_over_the_video_and_crops_cover_the_longer_side():
    assert eval_clip_starts(32, 8, 2, 3).tolist() == [0, 8, 17]  # span 15: starts 0..17
    assert eval_clip_starts(10, 8, 2, 2).tolist() == [0, 0]  # shorter than a clip: looped from frame 0
    assert square_crop_boxes(32, 48, 1) == [(0, 8, 32, 32)]
    assert square_crop_boxes(48, 32, 3) == [(0, 0, 32, 32), (8, 0, 32, 32), (16, 0, 32, 32)]
    with pytest.raises(ValueError, match="num_crops=2"):
        square_crop_boxes(32, 32, 2)


def test_pooling_by_feature_type():
    hidden = torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 3, 4)  # CLS + 2 tokens
    assert torch.equal(pool_features(hidden, "cls", True), hidden[:, 0])
    assert torch.equal(pool_features(hidden, "mean_patch", True), hidden[:, 1:].mean(1))
    assert pool_features(hidden, "both", True).shape == (2, 8)
    assert torch.equal(pool_features(hidden, "mean_patch", False), hidden.mean(1))
    with pytest.raises(ValueError, match="needs a model with a CLS token"):
        pool_features(hidden, "both", False)
    with pytest.raises(ValueError, match="feature_type='max'"):
        pool_features(hidden, "max", True)


def _model(tiny_config):
    torch.manual_seed(0)
    return VidropModel(tiny_config(num_frames=8)).eval()


def test_features_of_every_video_in_dataset_order(tiny_config, labelled_dataset):
    model = _model(tiny_config)

    def features(**kwargs):
        return extract_features(lambda x: model(x).last_hidden_state, labelled_dataset, num_frames=8, image_size=32,
                                has_cls_token=True, batch_size=5, **kwargs)

    one = features(feature_type="cls")
    assert one.features.shape == (32, 48) and one.features.dtype == np.float32
    assert sorted(np.bincount(one.labels).tolist()) == [4] * 8
    assert len(set(one.video_ids)) == 32
    # batching does not change a video's features; several views are averaged
    again = extract_features(lambda x: model(x).last_hidden_state, labelled_dataset, num_frames=8, image_size=32,
                             has_cls_token=True, batch_size=64, feature_type="cls")
    np.testing.assert_allclose(again.features, one.features, atol=1e-5)
    multi = features(feature_type="both", num_clips=2, num_crops=3)
    assert multi.features.shape == (32, 96) and not np.allclose(multi.features[:, :48], one.features)
    # the temporal-order control sees the same frames in another order
    shuffled = features(feature_type="cls", shuffle_frames_seed=0)
    assert shuffled.video_ids == one.video_ids and not np.allclose(shuffled.features, one.features)


def test_an_unlabelled_dataset_is_a_clear_error(tiny_config, compressed_dataset, tmp_path):
    from vidrop.data import CompressionOptions, build_dataset, build_synthetic_videos

    flat = tmp_path / "flat"
    flat.mkdir()
    build_synthetic_videos(tmp_path / "videos", videos_per_class=1, num_frames=8, size=32)
    (tmp_path / "videos" / "move_up" / "move_up_0000.mp4").rename(flat / "a.mp4")
    build_dataset(flat, tmp_path / "unlabelled", CompressionOptions(num_clusters=4, clip_frames=4))
    model = _model(tiny_config)
    with pytest.raises(ValueError, match="has no labels"):
        extract_features(lambda x: model(x).last_hidden_state, tmp_path / "unlabelled", 8, 32, True)


def test_evaluate_writes_eval_json_and_the_launcher_prints_the_table(tiny_config, labelled_dataset, compressed_dataset,
                                                                      tmp_path):
    model_dir = tmp_path / "model"
    _model(tiny_config).save_pretrained(model_dir)
    result = evaluate(EvalArguments(model=str(model_dir), train_dataset=str(labelled_dataset), device="cpu"))
    written = json.loads((model_dir / "eval.json").read_text())
    assert written["linear_probe_top1"] == result["linear_probe_top1"]
    assert 0 <= written["linear_probe_top1"] <= 100 and 0 <= written["knn_top1"] <= 100
    assert written["num_train_videos"] == 16 and written["num_eval_videos"] == 16 and written["num_classes"] == 8
    assert written["feature_type"] == "both" and written["feature_dim"] == 96 and written["seconds"] > 0
    # the probe's top-1 on each class, named as the dataset's label column names them
    assert sorted(written["linear_probe_per_class_top1"]) == sorted(MOTIONS)
    assert all(0 <= top1 <= 100 for top1 in written["linear_probe_per_class_top1"].values())
    # a separate eval dataset: the probes are fitted on all of train and scored on all of eval
    process = subprocess.run(
        [sys.executable, str(ROOT / "launchers" / "evaluate.py"), "--model", str(model_dir), "--train_dataset",
         str(labelled_dataset), "--eval_dataset", str(compressed_dataset), "--feature_type",
         "mean_patch", "--k", "3", "--device", "cpu", "--output", str(tmp_path / "eval.json")],
        capture_output=True, text=True, check=True,
    )
    assert "linear probe top-1 (%)" in process.stdout and "k-NN top-1 (%)" in process.stdout
    assert "linear probe top-1 by class (%)" in process.stdout and "rotate_ccw" in process.stdout
    written = json.loads((tmp_path / "eval.json").read_text())
    assert (written["num_train_videos"], written["num_eval_videos"]) == (32, 16)
    with pytest.raises(ValueError, match="feature_type='cls_token'"):
        EvalArguments(model=str(model_dir), train_dataset=str(labelled_dataset), feature_type="cls_token")


def test_an_eval_dataset_of_other_classes_is_a_clear_error(tiny_config, labelled_dataset, labelled_videos, tmp_path):
    # built from two of the eight class folders, its label 1 is rotate_cw where the train dataset's is move_left
    from vidrop.data import CompressionOptions, build_dataset

    for name in ("move_left", "rotate_cw"):
        shutil.copytree(labelled_videos / name, tmp_path / "videos" / name)
    build_dataset(tmp_path / "videos", tmp_path / "two", CompressionOptions(num_clusters=4))
    model_dir = tmp_path / "model"
    _model(tiny_config).save_pretrained(model_dir)
    args = EvalArguments(model=str(model_dir), train_dataset=str(labelled_dataset), eval_dataset=str(tmp_path / "two"),
                         device="cpu")
    with pytest.raises(ValueError, match=r"has the classes \['move_left', 'rotate_cw'\].*same classes in the same"):
        evaluate(args)
    assert not (model_dir / "eval.json").exists()


def test_the_segment_rows_of_a_video_give_one_feature_the_mean_of_theirs(tiny_config, labelled_videos, tmp_path):
    from vidrop.data import CompressionOptions, build_dataset

    source = tmp_path / "videos"
    for name in ("move_left", "rotate_cw"):
        shutil.copytree(labelled_videos / name, source / name)
    for segment_frames, name in ((8, "segments"), (64, "whole")):  # 16-frame videos: rows 0-7 and 8-15, or one
        build_dataset(source, tmp_path / name, CompressionOptions(num_clusters=16, segment_frames=segment_frames))
    torch.manual_seed(0)
    model = VidropModel(tiny_config(num_frames=8)).eval()

    def features(dataset, **kwargs):
        return extract_features(lambda x: model(x).last_hidden_state, tmp_path / dataset, num_frames=8,
                                image_size=32, has_cls_token=True, feature_type="cls", **{"frame_stride": 1, **kwargs})

    segments, whole = features("segments", num_clips=1), features("whole", num_clips=2)
    assert segments.video_ids == whole.video_ids and len(segments.video_ids) == 8
    assert segments.labels.tolist() == whole.labels.tolist()
    # one 8-frame clip per 8-frame segment: frames 0-7 and 8-15, as the 2 clips spread over the whole video
    np.testing.assert_allclose(segments.features, whole.features, atol=1e-5)
    with pytest.raises(ValueError, match="spans 15 frames, more than the 8-frame segment"):
        features("segments", num_clips=1, frame_stride=2)
    # without a frame_stride, evaluation samples clips as the model was pre-trained: its config's frame_stride
    args = EvalArguments(model="-", train_dataset=str(tmp_path / "segments"), feature_type="cls", num_clips=1)
    model.config.frame_stride = 1
    np.testing.assert_allclose(vidrop_features(model, tmp_path / "segments", args).features, segments.features,
                               atol=1e-5)
    model.config.frame_stride = 2
    with pytest.raises(ValueError, match="spans 15 frames, more than the 8-frame segment"):
        vidrop_features(model, tmp_path / "segments", args)
