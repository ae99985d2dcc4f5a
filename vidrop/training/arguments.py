"""Arguments of `launchers/pretrain.py`: dataclasses parsed by `transformers.HfArgumentParser`, from the command
line or a recipe file (`--config recipe.yaml|json`, the command line overriding it)."""

import json
import sys
from dataclasses import asdict, dataclass, field

import yaml
from transformers import HfArgumentParser

from ..conversion import backbone_config
from ..models import ARCHITECTURE_FIELDS, PRESETS, VidropConfig

DEFAULT_OUTPUT_DIR = "outputs/demo"
DEFAULT_DATASET = "outputs/data/synthetic"
# The embedded default: a ViT-T of 6 blocks on 8-frame 64x64 clips of the synthetic dataset, sampled 4 frames
# apart (as VideoMAE and V-JEPA sample Kinetics), sized to finish on 2 CPU cores in minutes, its student predicting
# the later tubelets from the earlier ones (mask_pattern=future: 1.1-1.8 points more linear probe than random masks
# on each of three seeds) with the recipes' stochastic depth (drop_path_rate=0.1: 0.5 points more over five seeds,
# within noise), its kept tokens whole tubes through time (drop_pattern=tube, as VideoMAE masks: 1.5 points more
# over ten seeds, 2.4 on the five that no screen had used; BENCHMARKS.md). Recipes in recipes/ set the paper's
# sizes and its random drop and masks.
DEMO_OVERRIDES = (
    "num_hidden_layers=6,num_frames=8,frame_stride=4,image_size=64,patch_size=8,small_crop_size=32,"
    "num_prototypes=1024,num_patch_prototypes=1024,head_hidden_size=512,head_bottleneck_size=128,mask_pattern=future,"
    "drop_path_rate=0.1,drop_pattern=tube"
)


@dataclass
class ModelArguments:
    """Which model to pre-train."""

    preset: str = field(default="tiny", metadata={"help": f"backbone size: {', '.join(PRESETS)}"})
    config_overrides: str | None = field(
        default=None,
        metadata={"help": "VidropConfig fields as 'name=value,...', e.g. 'drop_rate=0.9,loss_type=mse' (JSON values); "
                          "default: the demo's (a ViT-T of 6 blocks on 8 x 64^2 clips, tubes dropped, the later "
                          "tubelets masked, stochastic depth 0.1) "
                          "with --preset, none with --init_from"},
    )
    init_from: str | None = field(
        default=None,
        metadata={"help": "an HF VidropModel folder to start from, or a VideoMAE / V-JEPA 2 folder (converted on "
                          "the fly, with a new CLS token; launchers/convert.py does it once)"},
    )
    frame_stride: int | None = field(
        default=None,
        metadata={"help": "video frames between the frames of a clip, recorded as the config's frame_stride "
                          "(which launchers/evaluate.py follows); it wins over frame_stride in --config_overrides "
                          "and needs no restating of the demo's fields; default: the config's (4 for the demo, "
                          "2 for a preset)"},
    )

    def vidrop_config(self):
        """The `VidropConfig`: the preset (or `init_from`'s config) with the overrides and `frame_stride` applied.

        A model started from `init_from` keeps its architecture: overriding one of `ARCHITECTURE_FIELDS` with
        another value is a `ValueError`.
        """
        if self.config_overrides is not None:
            overrides = parse_overrides(self.config_overrides)
        else:  # the demo's fields, or none for a model started from init_from
            overrides = parse_overrides("" if self.init_from else DEMO_OVERRIDES)
        if self.frame_stride is not None:  # over the overrides' own, so a benchmark can vary it alone
            overrides["frame_stride"] = self.frame_stride
        if not self.init_from:
            return VidropConfig.from_preset(self.preset, **overrides)
        base = backbone_config(self.init_from)
        changed = [name for name in ARCHITECTURE_FIELDS if name in overrides and overrides[name] != getattr(base, name)]
        if changed:
            raise ValueError(
                f"--config_overrides changes {', '.join(changed)} of the --init_from model {self.init_from}; allowed: "
                "fields outside the architecture (clip size, drop and mask, SSL objective)"
            )
        return VidropConfig(**{**base.to_dict(), **overrides})


@dataclass
class DataArguments:
    """Where clips come from."""

    train_dataset: str = field(
        default=DEFAULT_DATASET,
        metadata={"help": "compressed dataset folder or Hub repo id; the default is built (synthetic) if absent"},
    )
    shuffle_buffer: int = field(default=64, metadata={"help": "streaming shuffle buffer (0: shard order only)"})
    num_workers: int = field(default=0, metadata={"help": "DataLoader worker processes per rank"})
    skip_corrupt: bool = field(default=False, metadata={"help": "skip and count corrupt rows instead of stopping"})
    eval_dataset: str | None = field(
        default=None,
        metadata={"help": "labelled dataset to score the exported teacher on at the end (linear probe, k-NN; "
                          "fitted on train_dataset; the train dataset itself: a held-out half of it), into "
                          "summary.json"},
    )
    flip_probability: float = field(
        default=0.0,
        metadata={"help": "horizontal flip per view; it swaps left and right motions, so 0 for direction-dependent "
                          "classes (the embedded dataset, Something-Something), 0.5 for Kinetics-like data"},
    )
    jitter_probability: float = field(default=0.8, metadata={"help": "colour jitter per view (DINO: 0.8)"})
    jitter_strength: float = field(default=0.4, metadata={"help": "brightness/contrast/saturation jitter range"})
    grayscale_probability: float = field(default=0.2, metadata={"help": "grayscale per view (DINO: 0.2)"})
    global_crop_scale: list[float] = field(
        default_factory=lambda: [0.4, 1.0],
        metadata={"help": "area range of the global crops, as a fraction of the frame (DINO's global_crops_scale)"},
    )
    small_crop_scale: list[float] = field(
        default_factory=lambda: [0.1, 0.4],
        metadata={"help": "area range of the small crops, as a fraction of the frame (DINO's local_crops_scale)"},
    )


@dataclass
class TrainArguments:
    """How to train: engine, optimisation schedules, logging and checkpoints."""

    output_dir: str = field(default=DEFAULT_OUTPUT_DIR, metadata={"help": "checkpoints, logs, exports, summary"})
    deepspeed: str = field(default="ds_configs/zero2.json", metadata={"help": "DeepSpeed JSON (see ds_configs/)"})
    micro_batch_size: int = field(default=16, metadata={"help": "clips per rank per micro step"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro steps per optimizer step"})
    max_steps: int = field(default=400, metadata={"help": "optimizer steps (ignored when num_epochs is given)"})
    num_epochs: float | None = field(
        default=None,
        metadata={"help": "train for this many passes over the dataset instead (needs the dataset's stats.json)"},
    )
    max_seconds: float | None = field(
        default=None,
        metadata={"help": "also stop after this many seconds of training (a wall-clock budget; the schedules "
                          "still span max_steps)"},
    )
    learning_rate: float = field(default=5e-4, metadata={"help": "peak learning rate"})
    min_learning_rate: float = field(default=1e-6, metadata={"help": "learning rate at the end of the cosine"})
    warmup_steps: int = field(default=20, metadata={"help": "linear learning-rate warm-up steps"})
    weight_decay: float = field(default=0.04, metadata={"help": "weight decay at step 0"})
    final_weight_decay: float = field(default=0.2, metadata={"help": "weight decay at the last step (cosine)"})
    momentum: float = field(default=0.99, metadata={"help": "EMA teacher momentum at step 0"})
    final_momentum: float = field(
        default=0.996,
        metadata={"help": "EMA teacher momentum at the last step (cosine). DINO's 1.0 freezes the teacher over a run's "
                          "last steps, which a run of many epochs can afford (the recipes keep it); a short run's "
                          "teacher ends better when it keeps following the student"},
    )
    teacher_temperature: float = field(default=0.07, metadata={"help": "teacher temperature after warm-up"})
    warmup_teacher_temperature: float = field(default=0.04, metadata={"help": "teacher temperature at step 0"})
    teacher_temperature_warmup_steps: int = field(default=30, metadata={"help": "teacher temperature warm-up"})
    seed: int = field(default=0, metadata={"help": "seed of weights, data order, crops and token plans"})
    logging_steps: int = field(default=1, metadata={"help": "steps between TensorBoard scalars"})
    save_steps: int = field(default=100, metadata={"help": "steps between checkpoints (and one at the end)"})
    save_total_limit: int | None = field(
        default=None,
        metadata={"help": "keep only this many newest checkpoints: older ones are deleted once a newer save is "
                          "complete (unset: keep all)"},
    )
    resume: bool = field(default=False, metadata={"help": "continue from the newest complete checkpoint"})
    growth_schedule: str | None = field(
        default=None,
        metadata={"help": "grow the model during the run: 'shape:step,...' with presets or JSON files of shape "
                          "fields, e.g. 'tiny:0,small:2000,base:6000' (the first at step 0)"},
    )
    growth_noise: float = field(
        default=1.0,
        metadata={"help": "symmetry-breaking noise of each growth, relative to each weight's std (the function is kept "
                          "at any value; the clones of a widened model separate faster with more: see BENCHMARKS.md)"},
    )
    growth_warmup_steps: int = field(default=10, metadata={"help": "learning-rate re-warm steps after a growth"})
    growth_fade_steps: int = field(
        default=0,
        metadata={"help": "0: grow by copies (with --growth_noise); N > 0: grow by masks, new units fresh and faded "
                          "in over N steps (masked structural growth; the function is kept at the growth)"},
    )
    growth_teacher_momentum: float | None = field(
        default=None,
        metadata={"help": "after a growth, restart the teacher's EMA momentum at this value, rising (cosine) to "
                          "final_momentum at the last step; unset: the run's momentum schedule goes on (a faster "
                          "teacher lowers the SSL loss without better features: BENCHMARKS.md, growth, session 12)"},
    )
    growth_teacher_heads_only: bool = field(
        default=False,
        metadata={"help": "with --growth_teacher_momentum: restart only the momentum of the teacher's projection "
                          "heads, whose targets must follow the grown features; its backbone keeps the run's "
                          "schedule and so its long average (BENCHMARKS.md, growth, session 18)"},
    )
    growth_teacher_momentum_steps: int | None = field(
        default=None,
        metadata={"help": "with --growth_teacher_momentum: return from it to the run's momentum schedule (cosine) "
                          "over this many steps after a growth, a re-warm of the teacher; unset: rise to "
                          "final_momentum at the last step"},
    )
    push_to_hub: str | None = field(
        default=None,
        metadata={"help": "at the end, push the teacher with its model card, summary and remote code to this Hub "
                          "model repo (namespace/name; token from HF_TOKEN or `hf auth login`)"},
    )
    hub_private: bool = field(default=False, metadata={"help": "create the push_to_hub repo private"})
    push_checkpoints_to: str | None = field(
        default=None,
        metadata={"help": "also push the teacher at every checkpoint to this branch of push_to_hub (one commit "
                          "per checkpoint; a failed push is logged and training goes on)"},
    )
    local_rank: int = field(default=-1, metadata={"help": "set by the DeepSpeed launcher"})


ARGUMENT_CLASSES = (ModelArguments, DataArguments, TrainArguments)


def parse_value(text):
    """A command-line value: JSON when it parses as JSON (`0.5`, `true`, `Infinity`), else the string itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_overrides(text):
    """`'a=1,b=mse'` -> `{"a": 1, "b": "mse"}` (values by `parse_value`); unknown fields are an error."""
    overrides = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        if "=" not in item:
            raise ValueError(f"config_overrides item {item!r} has no '='; allowed: 'name=value,...'")
        name, value = item.split("=", 1)
        overrides[name.strip()] = parse_value(value)
    unknown = set(overrides) - set(VidropConfig().to_dict())
    if unknown:
        raise ValueError(f"config_overrides names unknown VidropConfig fields {sorted(unknown)}")
    return overrides


def parse_arguments(argv=None):
    """Parse the command line, after the recipe file given by `--config` (unknown keys are errors)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    recipe = {}
    if "--config" in argv:
        index = argv.index("--config")
        path = argv[index + 1] if index + 1 < len(argv) else None
        if path is None:
            raise ValueError("--config needs a recipe file (.yaml, .yml or .json)")
        del argv[index : index + 2]
        try:
            with open(path) as f:
                recipe = (yaml.safe_load(f) if path.endswith((".yaml", ".yml")) else json.load(f)) or {}
        except (OSError, ValueError, yaml.YAMLError) as error:
            raise ValueError(f"cannot read the recipe {path!r}: {error}") from error
    parser = HfArgumentParser(ARGUMENT_CLASSES)
    known = {f for cls in ARGUMENT_CLASSES for f in cls.__dataclass_fields__}
    unknown = set(recipe) - known
    if unknown:
        raise ValueError(f"recipe {path!r} has unknown keys {sorted(unknown)}")
    recipe_argv = []
    for key, value in recipe.items():
        if isinstance(value, bool):
            recipe_argv += [f"--{key}", str(value)]
        elif value is not None:
            recipe_argv += [f"--{key}", json.dumps(value) if isinstance(value, (dict, list)) else str(value)]
    return parser.parse_args_into_dataclasses(recipe_argv + argv)


def resolved(model_args, data_args, train_args):
    """One JSON-serialisable dict of every argument (recorded next to the outputs)."""
    return {"model": asdict(model_args), "data": asdict(data_args), "train": asdict(train_args)}
