"""Weight import from VideoMAE and V-JEPA 2 checkpoints: a `transformers` folder (or Hub repo) in, a `VidropModel`
that computes the same encoder function out.

Both sources are pre-LayerNorm ViTs over the same Conv3d tubelets and `(B, T, C, H, W)` clips, so the blocks map
one to one (their separate query/key/value projections are stacked into ViDROP's fused `qkv`). VideoMAE adds its
fixed 1D sine-cosine table (`position_embedding_type="sincos_1d"`), has no key bias (zero) and, with
`use_mean_pooling=True`, no final LayerNorm; V-JEPA 2 rotates queries and keys (`"rope_3d"`). Neither has a CLS
token: by default the converted model gains a freshly initialised one, which the CLS loss needs. Decoder,
predictor, pooler and classifier weights have no counterpart and are reported by name.
"""

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .models import VidropConfig, VidropModel

logger = logging.getLogger(__name__)

SOURCES = ("videomae", "vjepa2")
CONVERSION_FILE = "conversion.json"
_WEIGHT_FILES = (
    "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
)


@dataclass
class ConversionReport:
    """What a conversion did: `unused` source weights (no ViDROP counterpart) and `initialised` ViDROP weights
    (no source counterpart, freshly initialised), by name."""

    source: str
    source_path: str
    unused: list[str] = field(default_factory=list)
    initialised: list[str] = field(default_factory=list)

    def to_dict(self):
        return asdict(self)


def _local_folder(path):
    """`path` itself when it is a folder, else a Hub repo id fetched into the cache (configs and weights only)."""
    if os.path.isdir(path):
        return Path(path)
    if os.path.exists(path):
        raise ValueError(f"{path} is a file; allowed: a model folder or a Hub repo id")
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(str(path), allow_patterns=["*.json", "*.safetensors", "*.bin"]))


def read_config(path):
    """The `config.json` of a model folder or Hub repo, as a dict; a clear error when there is none."""
    folder = _local_folder(path)
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ValueError(f"{path} has no config.json; allowed: a transformers model folder ({', '.join(SOURCES)})")
    return json.loads(config_file.read_text())


def read_state_dict(path):
    """All weights of a model folder or Hub repo: safetensors or PyTorch files, single or sharded."""
    from safetensors.torch import load_file

    folder = _local_folder(path)
    name = next((n for n in _WEIGHT_FILES if (folder / n).is_file()), None)
    if name is None:
        raise ValueError(f"{path} has no weights; allowed: a folder with one of {', '.join(_WEIGHT_FILES)}")
    files = [name]
    if name.endswith(".index.json"):
        files = sorted(set(json.loads((folder / name).read_text())["weight_map"].values()))
    state_dict = {}
    for file in files:
        if file.endswith(".safetensors"):
            state_dict.update(load_file(folder / file))
        else:
            state_dict.update(torch.load(folder / file, map_location="cpu", weights_only=True))
    return state_dict


def source_config(path, kind):
    """The `transformers` configuration object of a source folder of `kind` (all fields, defaults filled in)."""
    from transformers import VideoMAEConfig, VJEPA2Config

    return (VideoMAEConfig if kind == "videomae" else VJEPA2Config).from_pretrained(_local_folder(path))


def source_kind(config_dict, path=""):
    """`"vidrop"`, `"videomae"` or `"vjepa2"` from a config's `model_type`; anything else is a `ValueError`."""
    kind = config_dict.get("model_type")
    if kind not in ("vidrop",) + SOURCES:
        raise ValueError(
            f"{path} holds a model of type {kind!r}; allowed: 'vidrop' or a source to convert: {', '.join(SOURCES)}"
        )
    return kind


def _square(value, name):
    """An int from a size that may be given as `[h, w]`; non-square sizes are refused."""
    if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
            raise ValueError(f"{name}={value} is not square; allowed: equal height and width")
        value = value[0]
    return int(value)


# Fields both sources name as ViDROP does.
_SHARED_FIELDS = ("tubelet_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "hidden_act",
                  "layer_norm_eps", "initializer_range")


def _vidrop_config(source, image_size, patch_size, use_cls_token, **fields):
    """A `VidropConfig` from a source configuration: its shared fields, the given ones, and SSL defaults sized to it
    (small crops 96/224 of a global view, a multiple of the patch; the CLS loss only with a CLS token)."""
    image_size, patch_size = _square(image_size, "image_size"), _square(patch_size, "patch_size")
    return VidropConfig(
        **{name: getattr(source, name) for name in _SHARED_FIELDS},
        image_size=image_size,
        patch_size=patch_size,
        small_crop_size=max(patch_size, round(image_size * 96 / 224 / patch_size) * patch_size),
        use_cls_token=use_cls_token,
        cls_loss_weight=1.0 if use_cls_token else 0.0,
        **fields,
    )


def videomae_config(source, use_cls_token=True):
    """The `VidropConfig` of a `transformers.VideoMAEConfig`."""
    return _vidrop_config(
        source, source.image_size, source.patch_size, use_cls_token,
        num_frames=source.num_frames,
        num_channels=source.num_channels,
        intermediate_size=source.intermediate_size,
        # the query and value biases: `qkv_bias` in transformers 5.17, `qv_bias` in later releases
        qkv_bias=getattr(source, "qv_bias", getattr(source, "qkv_bias", True)),
        position_embedding_type="sincos_1d",
        use_final_layernorm=not source.use_mean_pooling,
    )


def vjepa2_config(source, use_cls_token=True):
    """The `VidropConfig` of a `transformers.VJEPA2Config` (the encoder; the predictor is not converted)."""
    return _vidrop_config(
        source, source.crop_size, source.patch_size, use_cls_token,
        num_frames=source.frames_per_clip,
        num_channels=source.in_chans,
        intermediate_size=int(source.hidden_size * source.mlp_ratio),
        qkv_bias=source.qkv_bias,
        drop_path_rate=source.drop_path_rate,
        position_embedding_type="rope_3d",
    )


def _strip_prefix(state_dict, prefix):
    """Keys under `prefix` (the task models' base-model prefix) without it; others unchanged."""
    return {(key[len(prefix):] if key.startswith(prefix) else key): value for key, value in state_dict.items()}


def _stack_qkv(weights, prefix, dim, key_bias):
    """Fused `qkv` weight `(3D, D)` and bias `(3D,)` (or None) from separate query/key/value entries under `prefix`.

    `key_bias=False` for VideoMAE: its key projection has no bias, an exact zero in the fused one. VideoMAE
    checkpoints name their biases either `query.bias`/`value.bias` or (older ones) `q_bias`/`v_bias`.
    """
    weight = torch.cat([weights.pop(f"{prefix}{name}.weight") for name in ("query", "key", "value")])
    query_bias = weights.pop(f"{prefix}query.bias", None)
    if query_bias is None:
        query_bias = weights.pop(f"{prefix}q_bias", None)
    if query_bias is None:
        return weight, None
    value_bias = weights.pop(f"{prefix}value.bias", None)
    if value_bias is None:
        value_bias = weights.pop(f"{prefix}v_bias")
    key = weights.pop(f"{prefix}key.bias") if key_bias else torch.zeros(dim, dtype=query_bias.dtype)
    return weight, torch.cat([query_bias, key, value_bias])


def _map_block(weights, prefix, names, dim, key_bias):
    """Move the weights of the block under `prefix` (`encoder.layer.{i}.` in both sources and in ViDROP) from
    `weights` (consumed) into a ViDROP dict; `names` maps the parts."""
    mapped = {}
    qkv_weight, qkv_bias = _stack_qkv(weights, prefix + names["attention"], dim, key_bias)
    mapped[f"{prefix}attention.qkv.weight"] = qkv_weight
    if qkv_bias is not None:
        mapped[f"{prefix}attention.qkv.bias"] = qkv_bias
    for target, source in (
        ("norm1", names["norm1"]), ("norm2", names["norm2"]), ("attention.proj", names["proj"]),
        ("mlp.fc1", names["fc1"]), ("mlp.fc2", names["fc2"]),
    ):
        for part in ("weight", "bias"):
            mapped[f"{prefix}{target}.{part}"] = weights.pop(f"{prefix}{source}.{part}")
    return mapped


# Where each source keeps its parts: (prefix of the task models, patch embedding, final norm, block part names).
_LAYOUTS = {
    "videomae": (
        "videomae.", "embeddings.patch_embeddings.projection", "layernorm",
        dict(attention="attention.attention.", norm1="layernorm_before", norm2="layernorm_after",
             proj="attention.output.dense", fc1="intermediate.dense", fc2="output.dense"),
    ),
    "vjepa2": (
        "vjepa2.", "encoder.embeddings.patch_embeddings.proj", "encoder.layernorm",
        dict(attention="attention.", norm1="norm1", norm2="norm2", proj="attention.proj", fc1="mlp.fc1",
             fc2="mlp.fc2"),
    ),
}


def _map_weights(kind, config, state_dict):
    """ViDROP-named weights from a source state dict -> `(mapped, unused source names)`."""
    prefix, embed, final, names = _LAYOUTS[kind]
    weights = _strip_prefix(state_dict, prefix)
    key_bias = kind == "vjepa2" and config.qkv_bias  # VideoMAE's key projection has no bias
    try:
        mapped = {f"embeddings.patch_embeddings.projection.{part}": weights.pop(f"{embed}.{part}")
                  for part in ("weight", "bias")}
        for index in range(config.num_hidden_layers):
            mapped.update(_map_block(weights, f"encoder.layer.{index}.", names, config.hidden_size, key_bias))
        if config.use_final_layernorm and f"{final}.weight" in weights:
            mapped.update({f"layernorm.{part}": weights.pop(f"{final}.{part}") for part in ("weight", "bias")})
    except KeyError as error:
        raise ValueError(f"the {kind} checkpoint has no weight {error.args[0]!r}; allowed: a complete {kind} encoder")
    return mapped, sorted(weights)


def convert(path, source=None, use_cls_token=True, seed=0):
    """Convert a VideoMAE or V-JEPA 2 folder (or Hub repo) into a `VidropModel` computing the same encoder.

    Args:
        path: a `transformers` folder or repo id of a `VideoMAEModel`, `VideoMAEForPreTraining`,
            `VideoMAEForVideoClassification`, `VJEPA2Model` or `VJEPA2ForVideoClassification`.
        source: `"videomae"` or `"vjepa2"`; `None` reads it from the config (a mismatch is an error).
        use_cls_token: add a freshly initialised CLS token (the default; the CLS loss needs it). Without it, the
            converted model's tokens equal the source encoder's outputs.
        seed: seeds the fresh weights (CLS and mask tokens).

    Returns:
        `(model, report)`: the `VidropModel` in fp32 and eval mode, and a `ConversionReport`.
    """
    folder = _local_folder(path)  # a repo id is fetched once; the reads below are local
    kind = source_kind(read_config(folder), path)
    if kind == "vidrop" or (source is not None and kind != source):
        allowed = source or ", ".join(SOURCES)
        raise ValueError(f"{path} holds a {kind!r} model; allowed: {allowed}")
    config = (videomae_config if kind == "videomae" else vjepa2_config)(source_config(folder, kind), use_cls_token)
    mapped, unused = _map_weights(kind, config, read_state_dict(folder))
    torch.manual_seed(seed)
    model = VidropModel(config)
    expected = model.state_dict()
    for name, tensor in mapped.items():
        if tensor.shape != expected[name].shape:
                raise ValueError(
                f"{path}: weight {name} has shape {tuple(tensor.shape)}; allowed: {tuple(expected[name].shape)}"
            )
    model.load_state_dict({name: tensor.float() for name, tensor in mapped.items()}, strict=False)
    report = ConversionReport(kind, str(path), unused, sorted(set(expected) - set(mapped)))
    if report.unused:
        logger.info("%s: %d weights have no ViDROP counterpart: %s", path, len(unused), ", ".join(unused))
    if report.initialised:
        logger.info("freshly initialised (no %s counterpart): %s", kind, ", ".join(report.initialised))
    return model.eval(), report


def convert_to_folder(path, output_dir, source=None, use_cls_token=True, seed=0):
    """`convert` and write the model as an HF folder (safetensors) with `conversion.json`, the report; returns the
    report."""
    model, report = convert(path, source, use_cls_token, seed)
    output_dir = Path(output_dir)
    model.save_pretrained(output_dir)
    (output_dir / CONVERSION_FILE).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return report


def backbone_config(path):
    """The `VidropConfig` of a ViDROP folder, or of the model that converting a source folder gives."""
    folder = _local_folder(path)
    kind = source_kind(read_config(folder), path)
    if kind == "vidrop":
        return VidropConfig.from_pretrained(folder)
    return (videomae_config if kind == "videomae" else vjepa2_config)(source_config(folder, kind))


def load_backbone(path, config=None):
    """A `VidropModel` from a ViDROP folder, or converted on the fly from a VideoMAE / V-JEPA 2 folder.

    `config`, when given, is the configuration the model is built with: the checkpoint's `ARCHITECTURE_FIELDS`
    with other fields (clip size, SSL toggles) as the run wants them.
    """
    folder = _local_folder(path)
    if source_kind(read_config(folder), path) == "vidrop":
        return VidropModel.from_pretrained(folder, **({"config": config} if config is not None else {}))
    model = convert(folder)[0]
    if config is None:
        return model
    backbone = VidropModel(config)
    backbone.load_state_dict(model.state_dict())
    return backbone
