import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from datasets import load_dataset

from vidrop.compression import decode_clip
from vidrop.data import CompressionOptions, build_dataset
from vidrop.data.shards import row_to_video

ROOT = Path(__file__).resolve().parents[2]


def _rows(dataset_dir):
    return list(load_dataset(str(dataset_dir), split="train", streaming=True))


def test_dataset_folder_shards_card_and_stats(compressed_dataset, synthetic_videos):
    shards = sorted(p.name for p in (compressed_dataset / "data").iterdir())
    assert shards == [f"train-{i:05d}.parquet" for i in range(4)]
    stats = json.loads((compressed_dataset / "stats.json").read_text())
    for key in ("raw_bytes", "compressed_bytes", "source_bytes", "compression_factor", "psnr_db", "frames",
                "encode_seconds", "videos", "skipped"):
        assert key in stats, key
    assert stats["videos"] == 16 and stats["frames"] == 16 * 16 and stats["skipped"] == []
    assert stats["raw_bytes"] == 16 * 16 * 32 * 32 * 3
    assert stats["compression_factor"] == pytest.approx(stats["raw_bytes"] / stats["compressed_bytes"])
    assert stats["source_bytes"] == sum(p.stat().st_size for p in synthetic_videos.glob("*/*.mp4"))
    assert 18 < stats["psnr_db"] < 60
    card = (compressed_dataset / "README.md").read_text()
    header = yaml.safe_load(card.split("---")[1])
    assert header["configs"][0]["data_files"][0]["path"] == "data/train-*.parquet"
    assert "compression factor" in card and "`frame_groups`" in card and "num_clusters=16" in card
    dataset = load_dataset(str(compressed_dataset), split="train", streaming=True)
    assert dataset.features["label"].names == sorted(p.name for p in synthetic_videos.iterdir())
    assert dataset.features["palette"].dtype == "binary"
    assert dataset.features["frame_groups"].feature.dtype == "binary"  # frames as bytes, not arrays
    rows = list(dataset)
    files = sorted(f"{p.parent.name}/{p.stem}" for p in synthetic_videos.glob("*/*.mp4"))
    assert sorted(r["video_id"] for r in rows) == files
    assert all(dataset.features["label"].names[r["label"]] == r["video_id"].split("/")[0] for r in rows)
    assert all(len(r["frame_groups"]) == 16 and len(r["palette"]) <= 16 * 3 for r in rows)  # a group per frame


def test_flat_folder_has_no_labels(synthetic_videos, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for path in list(synthetic_videos.glob("move_*/*_0000.mp4")):
        shutil.copy(path, flat / path.name)
    build_dataset(flat, tmp_path / "out", CompressionOptions(num_clusters=4, method="minibatch_kmeans"))
    rows = _rows(tmp_path / "out")
    assert len(rows) == 4 and "label" not in rows[0]
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["classes"] is None


def test_bad_inputs_are_skipped_with_reasons_and_short_videos_marked(synthetic_videos, tmp_path):
    source = tmp_path / "videos" / "walking"
    source.mkdir(parents=True)
    good = sorted(synthetic_videos.glob("zoom_in/*.mp4"))[0]
    shutil.copy(good, source / "good.mp4")
    (source / "zero.mp4").touch()
    data = good.read_bytes()
    (source / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (source / "notes.txt").write_text("not a video at all")
    (source / "random.mp4").write_bytes(bytes(range(256)) * 20)
    totals = build_dataset(tmp_path / "videos", tmp_path / "out", CompressionOptions(clip_frames=32))
    reasons = {Path(s["path"]).name: s["reason"] for s in totals["skipped"]}
    assert set(reasons) == {"zero.mp4", "truncated.mp4", "notes.txt", "random.mp4"}
    assert reasons["zero.mp4"] == "empty file (0 bytes)"
    assert all("not a decodable video" in r or "truncated" in r for n, r in reasons.items() if n != "zero.mp4")
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["skipped"] == totals["skipped"]
    (row,) = _rows(tmp_path / "out")
    assert row["video_id"] == "walking/good" and row["short"]  # 16 frames < a 32-frame clip: kept, marked
    assert totals["short_videos"] == 1


def test_empty_input_and_foreign_output_are_clear_errors(synthetic_videos, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="contains no files; allowed: a folder of videos"):
        build_dataset(tmp_path / "empty", tmp_path / "out")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(ValueError, match="exists and is not a ViDROP dataset"):
        build_dataset(synthetic_videos, foreign)
    assert (foreign / "thesis.tex").read_text() == "precious" and len(list(foreign.iterdir())) == 1
    with pytest.raises(ValueError, match="num_clusters=300 is not allowed"):
        CompressionOptions(num_clusters=300)


def test_resume_after_a_kill_redoes_nothing_and_duplicates_nothing(synthetic_videos, tmp_path):
    output = tmp_path / "out"
    command = [sys.executable, str(ROOT / "launchers" / "compress.py"), "--input_dir", str(synthetic_videos),
               "--output_dir", str(output), "--videos_per_shard", "1", "--method", "agglomerative"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    progress = output / "progress.json"
    deadline = time.time() + 120
    while time.time() < deadline and not (progress.exists() and len(json.loads(progress.read_text())["shards"]) >= 3):
        time.sleep(0.05)
    process.kill()
    process.wait()
    finished = json.loads(progress.read_text())["shards"]
    assert 3 <= len(finished) < 16, "the build was killed part-way"
    before = {f: (output / f).stat().st_mtime_ns for f in finished}
    # the same settings resume; other settings are refused
    with pytest.raises(ValueError, match="output_dir was built with options"):
        build_dataset(synthetic_videos, output, CompressionOptions(method="kmeans"))
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert all((output / f).stat().st_mtime_ns == t for f, t in before.items()), "finished shards were redone"
    ids = [r["video_id"] for r in _rows(output)]
    assert len(ids) == len(set(ids)) == 16
    assert json.loads((output / "stats.json").read_text())["videos"] == 16


def test_parallel_build_gives_the_same_rows(synthetic_videos, tmp_path):
    options = CompressionOptions(num_clusters=8)
    build_dataset(synthetic_videos, tmp_path / "one", options, num_proc=1, videos_per_shard=8)
    build_dataset(synthetic_videos, tmp_path / "two", options, num_proc=2, videos_per_shard=8)
    drop = ("encode_seconds",)
    one, two = (
        sorted(({k: v for k, v in r.items() if k not in drop} for r in _rows(tmp_path / name)),
               key=lambda r: r["video_id"])
        for name in ("one", "two")
    )
    assert one == two


def test_launcher_help_documents_every_option():
    result = subprocess.run([sys.executable, str(ROOT / "launchers" / "compress.py"), "--help"],
                            capture_output=True, text=True, check=True)
    for option in ("--input_dir", "--output_dir", "--num_clusters", "--method", "--short_side", "--fps",
                   "--max_frames", "--num_proc", "--seed"):
        assert option in result.stdout, option
    assert "palette size K per video, 2 to 256" in result.stdout


def test_progress_file_stays_small_and_stats_come_from_the_shards(compressed_dataset):
    progress = json.loads((compressed_dataset / "progress.json").read_text())
    assert progress["shards"] == [f"data/train-{i:05d}.parquet" for i in range(4)]
    assert set(progress) == {"options", "classes", "shards", "skipped"}  # no per-video entries
    rows = _rows(compressed_dataset)
    stats = json.loads((compressed_dataset / "stats.json").read_text())
    assert stats["compressed_bytes"] == sum(r["compressed_bytes"] for r in rows)
    assert stats["encode_seconds"] == pytest.approx(sum(r["encode_seconds"] for r in rows), rel=1e-5)


def test_a_long_video_is_stored_as_segment_rows_that_decode_to_it(synthetic_videos, compressed_dataset, tmp_path):
    source = tmp_path / "videos"
    for name in ("move_left", "zoom_in"):
        shutil.copytree(synthetic_videos / name, source / name)
    # 16-frame videos, segments of 6: rows of frames 0-5 and 6-15 (the remainder joins the last segment)
    build_dataset(source, tmp_path / "segments", CompressionOptions(num_clusters=16, clip_frames=8, segment_frames=6))
    rows = _rows(tmp_path / "segments")
    whole = {
        r["video_id"]: r for r in _rows(compressed_dataset) if r["video_id"].split("/")[0] in ("move_left", "zoom_in")
    }
    assert sorted((r["video_id"], r["first_frame"], r["num_frames"]) for r in rows) == sorted(
        (video_id, first, frames) for video_id in whole for first, frames in ((0, 6), (6, 10))
    )
    assert all(r["video_frames"] == 16 and len(r["frame_groups"]) == r["num_frames"] for r in rows)
    for video_id, row in whole.items():
        segments = sorted((r for r in rows if r["video_id"] == video_id), key=lambda r: r["first_frame"])
        decoded = np.concatenate([decode_clip(row_to_video(r), range(r["num_frames"])) for r in segments])
        assert np.array_equal(decoded, decode_clip(row_to_video(row), range(16)))  # one palette per video
    stats = json.loads((tmp_path / "segments" / "stats.json").read_text())
    whole_stats = [whole[r["video_id"]] for r in rows if r["first_frame"] == 0]
    assert stats["videos"] == 4 and stats["rows"] == 8 and stats["frames"] == 4 * 16
    assert stats["raw_bytes"] == 4 * 16 * 32 * 32 * 3
    assert stats["source_bytes"] == sum(r["source_bytes"] for r in whole_stats)
    assert stats["psnr_db"] == pytest.approx(np.mean([r["psnr_db"] for r in whole_stats]), rel=1e-6)
    # the same bytes as whole-video rows, plus the palette repeated in each further row
    palettes = sum(len(r["palette"]) for r in rows if r["first_frame"] > 0)
    assert stats["compressed_bytes"] == sum(r["compressed_bytes"] for r in whole_stats) + palettes
    with pytest.raises(ValueError, match="segment_frames=5 is not allowed with group_size=2"):
        CompressionOptions(group_size=2, segment_frames=5)
