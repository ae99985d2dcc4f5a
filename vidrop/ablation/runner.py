"""Run an ablation study: for every variant and seed, compress (or reuse) its dataset, pre-train it through the
real launcher with the same budget, evaluate it, and collect one result row. Finished runs are reused; a run
that fails is recorded with its error and the study goes on."""

import dataclasses
import json
import logging
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..data import CompressionOptions, build_dataset, build_synthetic_videos
from ..models import VidropConfig
from ..training.arguments import DEMO_OVERRIDES, parse_overrides
from ..training.launch import deepspeed_command
from .studies import STUDIES, parse_grid, study_variants

logger = logging.getLogger(__name__)
REPOSITORY = Path(__file__).resolve().parents[2]
RESULT_FILE = "result.json"  # written last: a run with it is finished
SPEC_FILE = "variant.json"


@dataclass
class AblationArguments:
    """The arguments of `launchers/ablate.py`."""

    study: str = field(default="dropping", metadata={"help": f"one of {', '.join(STUDIES)}"})
    grid: str | None = field(
        default=None,
        metadata={"help": "for --study grid: 'field=v1,v2;field2=v1,v2' (VidropConfig or compression fields)"},
    )
    output_dir: str = field(default="outputs/ablations", metadata={"help": "studies, runs, datasets, reports"})
    videos: str | None = field(
        default=None,
        metadata={"help": "folder of labelled videos (one subfolder per class); default: the embedded set"},
    )
    seeds: int = field(default=1, metadata={"help": "seeds per variant (mean ± std over them)"})
    budget_steps: int = field(default=200, metadata={"help": "optimizer steps of every run"})
    budget_seconds: float | None = field(default=None, metadata={"help": "also stop every run after this many seconds"})
    preset: str = field(default="tiny", metadata={"help": "backbone size of every run"})
    config_overrides: str = field(default=DEMO_OVERRIDES, metadata={"help": "the baseline's VidropConfig fields"})
    micro_batch_size: int = field(default=4, metadata={"help": "clips per rank per step"})
    ranks: int = field(default=1, metadata={"help": "processes per run (more than 1: the deepspeed launcher)"})
    deepspeed: str = field(default="ds_configs/zero2.json", metadata={"help": "DeepSpeed JSON of every run"})
    pretrain_args: str = field(default="", metadata={"help": "further launchers/pretrain.py options for every run"})

    def __post_init__(self):
        if self.study not in STUDIES:
            raise ValueError(f"study={self.study!r} is not known; allowed: {', '.join(STUDIES)}")
        for name in ("seeds", "budget_steps", "ranks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r} is not allowed; allowed: >= 1")


def study_dir(args):
    """The study's folder (absolute): runs, reports and TensorBoard entries."""
    name = args.study if args.study != "grid" else f"grid-{_slug(args.grid or '')}"
    return (Path(args.output_dir) / name).resolve()


def _slug(text):
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text)[:120]



def source_videos(args):
    """The labelled video folder of the study (the embedded synthetic set, written once, by default)."""
    if args.videos:
        if not Path(args.videos).is_dir():
            raise ValueError(f"videos={args.videos!r} is not a folder; allowed: a folder of class subfolders")
        return Path(args.videos)
    folder = Path(args.output_dir) / "videos"
    build_synthetic_videos(folder)
    return folder


def compressed_dataset(args, options):
    """The study's dataset compressed with `options`, built once and shared by every run that uses them."""
    key = _slug(",".join(f"{k}={v}" for k, v in sorted(dataclasses.asdict(options).items()) if v is not None))
    folder = (Path(args.output_dir) / "datasets" / key).resolve()
    if not (folder / "stats.json").exists():
        build_dataset(source_videos(args), folder, options, num_proc=1)
    return folder


def base_config(args):
    """The baseline's `VidropConfig`: the preset with the study's overrides."""
    return VidropConfig.from_preset(args.preset, **parse_overrides(args.config_overrides))


def run_spec(args, variant, seed):
    """Everything that determines a run's result; a stored run is reused only when its spec is equal."""
    base = base_config(args)
    config = VidropConfig(**{**base.to_dict(), **variant.config})
    compression = CompressionOptions(**variant.compression)
    return json.loads(json.dumps({  # as stored: tuples become lists
        "variant": variant.name,
        "axis": variant.axis,
        "value": variant.value,
        "baseline": variant.baseline,
        "seed": seed,
        "config": {k: v for k, v in config.to_dict().items() if k != "transformers_version"},
        "compression": dataclasses.asdict(compression),
        "budget_steps": args.budget_steps,
        "budget_seconds": args.budget_seconds,
        "micro_batch_size": args.micro_batch_size,
        "ranks": args.ranks,
        "deepspeed": args.deepspeed,
        "pretrain_args": args.pretrain_args,
        "videos": str(args.videos),
    }))


def _pretrain_command(args, variant, seed, dataset, run_dir):
    """The pre-training command of a run: the baseline's overrides with the variant's on top."""
    changed = {k: json.dumps(v) for k, v in {**parse_overrides(args.config_overrides), **variant.config}.items()}
    listed = [k for k, v in changed.items() if "," in v]
    if listed:
        raise ValueError(f"config fields {listed} hold lists, which config_overrides cannot carry; allowed: scalars")
    overrides = ",".join(f"{k}={v}" for k, v in changed.items())
    options = [
        "--preset", args.preset, "--config_overrides", overrides, "--train_dataset", str(dataset),
        "--eval_dataset", str(dataset), "--max_steps", str(args.budget_steps), "--save_steps", str(args.budget_steps),
        "--micro_batch_size", str(args.micro_batch_size), "--deepspeed", args.deepspeed, "--seed", str(seed),
        "--output_dir", str(run_dir), "--logging_steps", "1",
    ]
    if args.budget_seconds is not None:
        options += ["--max_seconds", str(args.budget_seconds)]
    options += args.pretrain_args.split()
    launcher = str(REPOSITORY / "launchers" / "pretrain.py")
    if args.ranks == 1:
        return [sys.executable, launcher, *options]
    return deepspeed_command(launcher, *options, num_gpus=args.ranks)


def _error_line(log):
    """The last line of a failed run's log that names an error (else its last line)."""
    lines = [re.sub(r"^\[rank\d+\]:\s*", "", line.strip()) for line in log.splitlines() if line.strip()]
    errors = [line for line in lines if re.search(r"(Error|Exception)\b", line) and not line.startswith("File ")]
    return (errors or lines or ["no output"])[-1][:300]


def run_variant(args, variant, seed, root):
    """One run -> its result row (reused when finished with the same spec; failures are rows too)."""
    spec = run_spec(args, variant, seed)
    run_dir = root / "runs" / f"{_slug(variant.name)}-seed{seed}"
    result_file = run_dir / RESULT_FILE
    if result_file.exists() and json.loads((run_dir / SPEC_FILE).read_text()) == spec:
        logger.info("reusing %s", run_dir)
        return json.loads(result_file.read_text())
    if run_dir.exists():
        shutil.rmtree(run_dir)  # unfinished, failed or made with another spec: run it again
    run_dir.mkdir(parents=True)
    (run_dir / SPEC_FILE).write_text(json.dumps(spec, indent=1))
    row = {k: spec[k] for k in ("variant", "axis", "value", "baseline", "seed")}
    row.update(run_dir=str(run_dir), status="failed", error="")
    try:
        dataset = compressed_dataset(args, CompressionOptions(**variant.compression))
        logger.info("running %s (seed %d)", variant.name, seed)
        process = subprocess.run(
            _pretrain_command(args, variant, seed, dataset, run_dir), cwd=root, capture_output=True, text=True
        )
        (run_dir / "pretrain.log").write_text(process.stdout + process.stderr)
        if process.returncode != 0:
            raise RuntimeError(_error_line(process.stderr or process.stdout))
        summary = json.loads((run_dir / "summary.json").read_text())
        stats = json.loads((Path(dataset) / "stats.json").read_text())
    except Exception as error:  # noqa: BLE001 - a failed variant is a result; the study goes on
        row["error"] = str(error).splitlines()[0] if str(error) else type(error).__name__
        logger.warning("%s (seed %d) failed: %s", variant.name, seed, row["error"])
        return row
    row.update(
        status="ok",
        linear_probe_top1=summary["eval"]["linear_probe_top1"],
        knn_top1=summary["eval"]["knn_top1"],
        linear_probe_per_class_top1=summary["eval"]["linear_probe_per_class_top1"],
        final_loss=summary["final_loss"]["loss"],
        train_seconds=summary["train_seconds"],
        steps=summary["steps"],
        compression_factor=stats["compression_factor"],
        psnr_db=stats["psnr_db"],
    )
    result_file.write_text(json.dumps(row, indent=1))
    return row


def run_study(args):
    """Run (or reuse) every variant x seed of `args.study`; returns `(variants, rows)`."""
    root = study_dir(args)
    root.mkdir(parents=True, exist_ok=True)
    variants = study_variants(args.study, base_config(args), parse_grid(args.grid) if args.grid else None)
    for variant in variants:  # an invalid configuration is the user's error: stop before any run
        run_spec(args, variant, 0)
    rows = [run_variant(args, variant, seed, root) for variant in variants for seed in range(args.seeds)]
    return variants, rows
