"""Pushing to the Hugging Face Hub: a model folder with its remote code and model card, a compressed dataset with
its dataset card.

A pushed model loads with `AutoModel.from_pretrained(repo, trust_remote_code=True)` where `vidrop` is not
installed: the folder carries `configuration_vidrop.py` and `modeling_vidrop.py` (they import only torch and
transformers) and `config.json` maps the Auto classes to them. The token comes from where `huggingface_hub`
looks (`HF_TOKEN`, `hf auth login`); it is never written or logged here.
"""

import json
import logging
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import HfApi, ModelCard, ModelCardData
from huggingface_hub.errors import HfHubHTTPError

from .models import VidropConfig, VidropModel

logger = logging.getLogger(__name__)

DATASET_FILES = ("data/*.parquet", "README.md", "stats.json")  # what a compressed dataset repo holds
RUN_FILES = ("summary.json", "eval.json")  # copied next to a model pushed from a run


class HubPushError(RuntimeError):
    """A push the Hub refused or failed; the message says what to do. Local files are left as they were."""


def run_dir_of(folder):
    """The pre-training output folder a model folder belongs to (itself, or the run of its `student/` or `teacher/`
    export), or None."""
    folder = Path(folder)
    for candidate in (folder, folder.parent):
        if (candidate / "summary.json").is_file():
            return candidate
    return None


def _read_json(path):
    return json.loads(path.read_text()) if path is not None and path.is_file() else None


def _training_rows(summary, variant):
    """`(name, value)` rows of the card's training table."""
    arguments = summary.get("arguments", {})
    model_args, data_args, train_args = (arguments.get(k, {}) for k in ("model", "data", "train"))
    rows = [
        ("steps", summary.get("steps")),
        ("clips seen", summary.get("clips_seen")),
        ("ranks", summary.get("world_size")),
        ("training time", f"{summary['train_seconds']:.0f} s" if "train_seconds" in summary else None),
        ("final losses", ", ".join(f"{k} {v:.4g}" for k, v in summary.get("final_loss", {}).items()) or None),
        ("data", f"`{data_args['train_dataset']}`" if data_args.get("train_dataset") else None),
        ("started from", f"`{model_args['init_from']}`" if model_args.get("init_from") else "random weights"),
        ("preset / overrides", f"`{model_args.get('preset')}` / `{model_args.get('config_overrides') or 'none'}`"),
        ("DeepSpeed", f"`{train_args['deepspeed']}`" if train_args.get("deepspeed") else None),
        ("micro batch x accumulation", f"{train_args.get('micro_batch_size')} x "
                                       f"{train_args.get('gradient_accumulation_steps')}"),
        ("learning rate", train_args.get("learning_rate")),
    ]
    if variant:  # the run was one of an ablation study (`variant.json` of `launchers/ablate.py`)
        role = "the baseline" if variant.get("baseline") else f"{variant.get('axis')} = {variant.get('value')}"
        rows.append(("ablation variant", f"`{variant.get('variant')}` ({role}, seed {variant.get('seed')})"))
    return [(name, value) for name, value in rows if value is not None]


def model_card(config, repo_id, which, run_dir=None, scores=None, license="apache-2.0"):
    """The model card (`README.md` text) of a ViDROP encoder: what it is, how it was trained (from the run's
    `summary.json` and an ablation's `variant.json`), its scores (`eval.json`), how to load it, its license."""
    run_dir = Path(run_dir) if run_dir is not None else None
    summary = _read_json(run_dir / "summary.json" if run_dir else None) or {}
    variant = _read_json(run_dir / "variant.json" if run_dir else None)
    dataset = summary.get("arguments", {}).get("data", {}).get("train_dataset", "")
    data = ModelCardData(
        license=license,
        library_name="transformers",
        tags=["vidrop", "video", "self-supervised-learning", "video-transformer"],
        datasets=[dataset] if dataset.count("/") == 1 and not Path(dataset).exists() else None,
    )
    t, p = config.tubelet_size, config.patch_size
    parts = [
        f"# {repo_id.split('/')[-1]}",
        f"A ViDROP video encoder: a ViT {config.hidden_size} wide with {config.num_hidden_layers} blocks of "
        f"{config.num_attention_heads} heads (MLP {config.intermediate_size}), tubelets {t} x {p} x {p} on "
        f"{config.num_frames}-frame {config.image_size}x{config.image_size} clips (one frame in "
        f"{config.frame_stride} of the video), `{config.position_embedding_type}` "
        f"position embeddings{', a CLS token' if config.use_cls_token else ''}. Pre-trained by self-distillation "
        f"with a sparse encoder: {config.drop_rate:.0%} of the tubelet tokens dropped (`{config.drop_pattern}`), "
        f"{config.mask_ratio:.0%} of the kept ones masked for the student (`{config.mask_pattern}`), "
        f"`{config.loss_type}` loss, "
        f"{config.num_small_crops} small crops, an EMA teacher. These are the {which}'s weights.",
        "## How to load",
        "```python\nimport torch\nfrom transformers import AutoModel\n\n"
        f'model = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True)  # or `import vidrop` without it\n'
        f"pixel_values = torch.randn(1, {config.num_frames}, 3, {config.image_size}, {config.image_size})"
        "  # (B, T, C, H, W), ImageNet-normalised\n"
        "outputs = model(pixel_values)  # last_hidden_state (B, [1 +] N, D), pooler_output (B, D)\n```",
        "## Training",
    ]
    if summary:
        rows = "\n".join(f"| {n} | {v} |" for n, v in _training_rows(summary, variant))
        parts.append("| | |\n| --- | --- |\n" + rows)
    else:
        parts.append("Not recorded with this folder (no `summary.json` of a finished pre-training run).")
    scores = scores or summary.get("eval")
    parts.append("## Evaluation")
    if scores:
        parts.append(
            "Frozen features, scikit-learn linear probe and cosine k-NN (`launchers/evaluate.py`).\n\n"
            "| linear probe top-1 % | k-NN top-1 % | train videos | eval videos | features |\n"
            "| --- | --- | --- | --- | --- |\n"
            f"| {scores['linear_probe_top1']:.1f} | {scores['knn_top1']:.1f} | {scores.get('num_train_videos', '?')} | "
            f"{scores.get('num_eval_videos', '?')} | {scores.get('feature_type', '?')} |"
        )
    else:
        parts.append("Not evaluated.")
    parts += ["## License", f"`{license}`"]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(parts) + "\n")


@contextmanager
def _registered_for_auto_classes():
    """Within it, `save_pretrained` copies the modeling files and writes `auto_map` (for `trust_remote_code`)."""
    saved = VidropConfig._auto_class, VidropModel._auto_class
    VidropConfig.register_for_auto_class("AutoConfig")
    VidropModel.register_for_auto_class("AutoModel")
    try:
        yield
    finally:
        VidropConfig._auto_class, VidropModel._auto_class = saved


def _model_folder(checkpoint, which, workdir):
    """The HF folder to push from `checkpoint`: an HF folder itself, or the `which` export of a pre-training output
    folder (exported from its newest complete checkpoint when the run has not exported it)."""
    checkpoint = Path(checkpoint)
    if (checkpoint / "config.json").is_file() and (checkpoint / "model.safetensors").is_file():
        return checkpoint
    if (checkpoint / which / "model.safetensors").is_file():
        return checkpoint / which
    if (checkpoint / "checkpoints").is_dir():
        from .training.checkpoint import newest_complete_tag  # deepspeed is only needed on this path
        from .training.export import export_from_checkpoint

        tag = newest_complete_tag(checkpoint)
        if tag is not None:
            export_from_checkpoint(checkpoint, tag, workdir / "export")
            return workdir / "export" / which
    raise ValueError(
        f"checkpoint={str(checkpoint)!r} holds no model; allowed: an HF VidropModel folder or the output_dir of a "
        "pre-training run (with student/ and teacher/ or a complete checkpoint)"
    )


def stage_model(checkpoint, staging, repo_id, which="teacher", license="apache-2.0"):
    """Write into `staging` exactly what a model push uploads: weights (safetensors), `config.json` with `auto_map`,
    the remote modeling code, the model card, and the run's `summary.json` / `eval.json` when there are."""
    staging = Path(staging)
    folder = _model_folder(checkpoint, which, staging.parent)
    model = VidropModel.from_pretrained(folder)
    with _registered_for_auto_classes():
        model.save_pretrained(staging)
    run_dir = run_dir_of(checkpoint) or run_dir_of(folder)
    scores = _read_json(folder / "eval.json") or _read_json(run_dir / "eval.json" if run_dir else None)
    model_card(model.config, repo_id, which, run_dir, scores, license).save(staging / "README.md")
    for name in RUN_FILES:
        source = folder / name if (folder / name).is_file() else (run_dir / name if run_dir else None)
        if source is not None and source.is_file():
            shutil.copyfile(source, staging / name)
    return staging


def _explain(error, what, repo_id):
    """A `HubPushError` for an HTTP failure, saying what to do about it."""
    status = error.response.status_code if error.response is not None else None
    advice = {
        401: "the token was refused: log in with `hf auth login` or set HF_TOKEN",
        403: f"the token may not write to {repo_id}: use a write token with access to its namespace",
        404: f"{repo_id} or the revision does not exist and could not be created",
    }.get(status, "the Hub failed; nothing was changed locally, run the push again")
    return HubPushError(f"pushing {what} to {repo_id} failed with HTTP {status}: {advice}")


def push_folder(folder, repo_id, repo_type="model", revision=None, private=False, commit_message=None,
                allow_patterns=None):
    """Create `repo_id` (and the branch `revision`) if needed and upload `folder` (the files matching
    `allow_patterns`, default all) in one commit; returns the commit URL. HTTP failures become a `HubPushError`."""
    api = HfApi()
    try:
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        if revision and revision != "main":
            api.create_branch(repo_id, branch=revision, repo_type=repo_type, exist_ok=True)
        commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type, revision=revision,
                                   commit_message=commit_message or f"Upload ViDROP {repo_type}",
                                   allow_patterns=allow_patterns)
    except HfHubHTTPError as error:
        raise _explain(error, f"a {repo_type}", repo_id) from None
    logger.info("pushed %s to %s", folder, commit.commit_url)
    return commit.commit_url


def push_model(checkpoint, repo_id, revision=None, private=False, commit_message=None, dry_run=None,
               which="teacher", license="apache-2.0"):
    """Push a ViDROP model (`checkpoint`: an HF folder or a pre-training output folder) to `repo_id`.

    `dry_run`, a folder: write there exactly what would be uploaded, and upload nothing. Returns the commit URL,
    or the dry-run folder.
    """
    with tempfile.TemporaryDirectory() as workdir:
        staging = stage_model(checkpoint, Path(workdir) / "model", repo_id, which, license)
        if dry_run is not None:
            shutil.copytree(staging, dry_run, dirs_exist_ok=True)
            return str(dry_run)
        return push_folder(staging, repo_id, "model", revision, private, commit_message)


def dataset_files(dataset_dir):
    """The files of a compressed dataset that a push uploads (shards, card, statistics), relative paths."""
    dataset_dir = Path(dataset_dir)
    if not (dataset_dir / "stats.json").is_file() or not (dataset_dir / "README.md").is_file():
        raise ValueError(
            f"dataset={str(dataset_dir)!r} is not a finished compressed dataset (no stats.json or README.md); "
            "allowed: a folder built by launchers/compress.py"
        )
    return sorted(str(p.relative_to(dataset_dir)) for pattern in DATASET_FILES for p in dataset_dir.glob(pattern))


def push_dataset(dataset_dir, repo_id, revision=None, private=False, commit_message=None, dry_run=None):
    """Push a compressed dataset (parquet shards, dataset card, `stats.json`) to the dataset repo `repo_id`, from
    where `--train_dataset repo_id` streams it. `dry_run` as in `push_model`."""
    files = dataset_files(dataset_dir)
    if dry_run is not None:
        for name in files:
            (Path(dry_run) / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(dataset_dir) / name, Path(dry_run) / name)
        return str(dry_run)
    return push_folder(dataset_dir, repo_id, "dataset", revision, private, commit_message, list(DATASET_FILES))


@dataclass
class PushArguments:
    """Arguments of `launchers/push_to_hub.py`: one model or one dataset to one repo."""

    repo_id: str = field(metadata={"help": "the Hub repo, namespace/name (created if needed)"})
    checkpoint: str | None = field(
        default=None,
        metadata={"help": "a model to push: an HF VidropModel folder, or a pre-training output_dir (its export, or "
                          "its newest complete DeepSpeed checkpoint exported on the fly)"},
    )
    dataset: str | None = field(default=None, metadata={"help": "a compressed dataset folder to push instead"})
    revision: str | None = field(default=None, metadata={"help": "branch to push to (created if needed; default main)"})
    private: bool = field(default=False, metadata={"help": "create the repo private"})
    commit_message: str | None = field(default=None, metadata={"help": "the commit's message"})
    dry_run: str | None = field(
        default=None, metadata={"help": "write exactly what would be uploaded into this folder and upload nothing"},
    )
    which: str = field(default="teacher", metadata={"help": "of a run: the teacher (default) or the student"})
    license: str = field(default="apache-2.0", metadata={"help": "the license field of the model card"})

    def __post_init__(self):
        if (self.checkpoint is None) == (self.dataset is None):
            raise ValueError("give one of --checkpoint (a model) or --dataset (a compressed dataset), not both or none")
        if self.which not in ("teacher", "student"):
            raise ValueError(f"which={self.which!r} is not supported; allowed: 'teacher', 'student'")


def push(args):
    """Push what `PushArguments` describe; returns the commit URL, or the dry-run folder."""
    if args.dataset is not None:
        return push_dataset(args.dataset, args.repo_id, args.revision, args.private, args.commit_message, args.dry_run)
    return push_model(args.checkpoint, args.repo_id, args.revision, args.private, args.commit_message, args.dry_run,
                      args.which, args.license)
