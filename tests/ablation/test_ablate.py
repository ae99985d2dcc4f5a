"""`launchers/ablate.py`: variants, real runs, reuse, failures and every report file."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from vidrop import VidropConfig
from vidrop.ablation import Variant, parse_grid, study_variants
from vidrop.training.arguments import ModelArguments

ROOT = Path(__file__).resolve().parents[2]
TINY = ("hidden_size=48,num_hidden_layers=2,num_attention_heads=3,intermediate_size=96,num_frames=4,image_size=32,"
        "patch_size=8,small_crop_size=16,num_prototypes=64,num_patch_prototypes=64,head_hidden_size=64,"
        "head_bottleneck_size=32")


def test_each_study_varies_one_thing_from_its_baseline():
    base = VidropConfig.from_preset("tiny", drop_rate=0.75, mask_ratio=0.5)
    compression = study_variants("compression", base)
    assert [v.value for v in compression] == ["kmeans", "gmm", "agglomerative", "dbscan"]
    assert compression[0].baseline and all(v.config == {} for v in compression)
    dropping = study_variants("dropping", base)
    assert [v.config for v in dropping] == [{"drop_pattern": p} for p in
                                            ("random", "spatial_uniform", "temporal_uniform", "stratified")]
    paper = study_variants("paper", base)
    assert paper[0].name == "baseline" and sum(v.baseline for v in paper) == 1
    assert {v.axis for v in paper[1:]} == {"loss_type", "num_small_crops", "drop_pattern", "drop_rate", "num_clusters",
                                          "mask_ratio", "mask_pattern"}
    assert all(len(v.config) + len(v.compression) == 1 for v in paper[1:])
    baseline_values = {"drop_rate=0.75", "mask_ratio=0.5", "drop_pattern=random", "mask_pattern=random"}
    assert baseline_values.isdisjoint(v.name for v in paper)
    assert {"drop_pattern=tube", "drop_pattern=block", "num_clusters=8"} <= {v.name for v in paper}
    demo = {v.name for v in study_variants("paper", ModelArguments().vidrop_config())}  # around the demo's patterns
    assert {"mask_pattern=random", "drop_pattern=random", "drop_pattern=block"} <= demo
    assert {"mask_pattern=future", "drop_pattern=tube"}.isdisjoint(demo)
    grid = study_variants("grid", base, parse_grid("drop_rate=0.5,0.9;num_clusters=8,16"))
    assert [v.name for v in grid] == ["drop_rate=0.5,num_clusters=8", "drop_rate=0.5,num_clusters=16",
                                      "drop_rate=0.9,num_clusters=8", "drop_rate=0.9,num_clusters=16"]
    assert grid[0].baseline and grid[3].config == {"drop_rate": 0.9} and grid[3].compression == {"num_clusters": 16}


@pytest.mark.parametrize("text, message", [("drop_rate", "has no '='"), ("dropp_rate=0.5", "unknown ablation fields"),
                                           ("drop_rate=", "has no values"), ("", "the grid is empty")])
def test_bad_grids_are_clear_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_grid(text)


def _ablate(output, videos, *extra):
    command = [sys.executable, str(ROOT / "launchers" / "ablate.py"), "--study", "grid", "--grid",
               "cls_loss_weight=1.0,Infinity", "--seeds", "2", "--budget_steps", "3", "--config_overrides", TINY,
               "--micro_batch_size", "2", "--videos", str(videos), "--output_dir", str(output), *extra]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT)


def test_a_grid_with_two_seeds_runs_reports_reuses_and_survives_a_failing_variant(labelled_videos, tmp_path):
    # cls_loss_weight=Infinity is a valid configuration whose loss is not finite: that variant fails at step 0
    first = _ablate(tmp_path / "ablations", labelled_videos)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    study = tmp_path / "ablations" / "grid-cls_loss_weight=1.0_Infinity"
    rows = list(csv.DictReader(open(study / "results.csv")))
    assert [(r["variant"], r["seed"], r["status"]) for r in rows] == [
        ("cls_loss_weight=1.0", "0", "ok"), ("cls_loss_weight=1.0", "1", "ok"),
        ("cls_loss_weight=inf", "0", "failed"), ("cls_loss_weight=inf", "1", "failed")]
    ok, failed = rows[0], rows[2]
    assert 0 <= float(ok["linear_probe_top1"]) <= 100 and float(ok["final_loss"]) > 0
    assert float(ok["compression_factor"]) > 1 and float(ok["psnr_db"]) > 20 and ok["steps"] == "3"
    assert "non-finite loss at step 0" in failed["error"]
    spec = json.loads((Path(ok["run_dir"]) / "variant.json").read_text())
    assert spec["config"]["cls_loss_weight"] == 1.0 and spec["config"]["hidden_size"] == 48 and spec["seed"] == 0
    table = (study / "results.md").read_text()
    assert "**cls_loss_weight=1.0** (baseline)" in table and "2/2" in table
    assert "0/2 failed: FloatingPointError: non-finite loss at step 0" in table and "±" in table
    classes = ["move_down", "move_left", "move_right", "move_up", "rotate_ccw", "rotate_cw", "zoom_in", "zoom_out"]
    per_class = [json.loads(r["linear_probe_per_class_top1"]) for r in rows[:2]]
    assert all(sorted(c) == classes for c in per_class)
    by_class = table[table.index("| variant | move_down"):].splitlines()  # the per-class table, after the main one
    assert by_class[0] == "| variant | " + " | ".join(classes) + " |"
    baseline_row = by_class[2].split(" | ")[1:]  # the failed variant has no row
    assert by_class[2].startswith("| **cls_loss_weight=1.0** (baseline)") and len(by_class) == 3
    assert [float(cell.strip(" |")) for cell in baseline_row] == pytest.approx(
        [(per_class[0][c] + per_class[1][c]) / 2 for c in classes], abs=0.051)
    for name in ("linear_probe_top1", "knn_top1", "final_loss", "train_seconds", "loss_curves"):
        assert (study / f"{name}.png").read_bytes()[:4] == b"\x89PNG", name
    assert len(list((study / "tensorboard").rglob("events.out.tfevents.*"))) >= 2  # hparams of the 2 finished runs

    finished = {
        r["run_dir"]: (Path(r["run_dir"]) / "result.json").stat().st_mtime_ns for r in rows if r["status"] == "ok"
    }
    second = _ablate(tmp_path / "ablations", labelled_videos)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stderr.count("reusing") == 2
    assert all((Path(d) / "result.json").stat().st_mtime_ns == t for d, t in finished.items())
    assert list(csv.DictReader(open(study / "results.csv")))[0]["linear_probe_top1"] == ok["linear_probe_top1"]


def test_an_invalid_variant_stops_the_study_before_any_run(labelled_videos, tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "launchers" / "ablate.py"), "--study", "grid", "--grid", "drop_rate=0.5,1.5",
         "--config_overrides", TINY, "--videos", str(labelled_videos), "--output_dir", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=ROOT)
    assert result.returncode != 0 and "drop_rate=1.5 is out of range" in result.stderr
    assert not list((tmp_path / "out").rglob("variant.json"))


def test_a_loss_curve_reads_every_step_with_its_seconds_from_tensorboard(tmp_path):
    """Every event is kept (TensorBoard's default sampling keeps 10,000 of a long run's steps), seconds count from
    the run's first step (taken to have lasted as long as the second), and a run without the scalar or without
    TensorBoard has none."""
    from torch.utils.tensorboard import SummaryWriter

    from vidrop.ablation.report import loss_curve

    writer = SummaryWriter(tmp_path / "run" / "tensorboard")
    for step in range(1, 12001):
        writer.add_scalar("train/loss", 10.0 / step, step, walltime=1000.0 + 2.0 * step)
    writer.close()
    curve = loss_curve(tmp_path / "run")
    assert len(curve) == 12000
    assert curve[0] == (1, pytest.approx(2.0), pytest.approx(10.0))
    assert curve[-1] == (12000, pytest.approx(24000.0), pytest.approx(10.0 / 12000))
    assert loss_curve(tmp_path / "run", "train/cls_loss") == [] and loss_curve(tmp_path / "none") == []


def test_the_tables_give_each_metric_and_class_against_the_baseline():
    """Means over finished seeds, differences to the baseline (one that rounds to zero reads +0, not -0), and a
    per-class table without the variants that have no finished run."""
    from vidrop.ablation.report import aggregate, markdown_table, per_class_table

    variants = [Variant("mask_ratio", 0.5, {}, {}, True), Variant("mask_ratio", 0.75, {"mask_ratio": 0.75}, {}),
                Variant("mask_ratio", 0.9, {"mask_ratio": 0.9}, {})]

    def row(variant, seed, top1, seconds, status="ok"):
        scores = dict(linear_probe_top1=top1, knn_top1=10.0, final_loss=1.0, train_seconds=seconds,
                      compression_factor=2.0, psnr_db=30.0, linear_probe_per_class_top1={"a": top1, "b": 100 - top1})
        return {"variant": variant.name, "seed": seed, "status": status, "error": "", **scores}

    rows = [row(variants[0], 0, 40.0, 16.0), row(variants[0], 1, 50.0, 16.0),
            row(variants[1], 0, 60.0, 15.8), row(variants[1], 1, 70.0, 15.6),
            {"variant": variants[2].name, "seed": 0, "status": "failed", "error": "ValueError: bad"}]
    summary = aggregate(variants, rows)
    table = markdown_table("grid", summary).splitlines()
    assert table[2].startswith("| **mask_ratio=0.5** (baseline) | 45.0 ± 7.1 |")
    assert "| mask_ratio=0.75 | 65.0 ± 7.1 | +20.0 |" in table[3] and "| 16 ± 0 | +0 |" in table[3]
    assert table[4].endswith("| 0/1 failed: ValueError: bad |")
    assert per_class_table(summary).splitlines() == [
        "| variant | a | b |", "| --- | --- | --- |", "| **mask_ratio=0.5** (baseline) | 45.0 | 55.0 |",
        "| mask_ratio=0.75 | 65.0 (+20.0) | 35.0 (-20.0) |"]
