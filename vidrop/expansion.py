"""Function-preserving growth of a ViDROP model: depth, MLP width and hidden width (with the number of heads and the
head dimension), as pure functions on `(VidropConfig, state dict)`, for the encoder, the self-distillation heads
and Adam's moments.

State layout: the keys of `SelfDistillation.student` without its `student.` prefix (or of its teacher):
`backbone.<VidropModel key>`, `cls_head.<...>`, `patch_head.<...>`; a bare `VidropModel` state goes through
`grow_model`. Every operator takes a `role`: `"weight"` for parameters and buffers, `"exp_avg"` /
`"exp_avg_sq"` for Adam's moments of those parameters (mapped by the same linear maps, squared for the second
moment; cloned units share their original's moments the way they share its weights).

How function is preserved:
* depth: a new block is a copy of the block before it with its two output projections (attention `proj` and
  `mlp.fc2`) zeroed, so it adds nothing to the residual stream until training moves them;
* MLP width, heads: new units clone existing ones and the consumer's columns of a unit and its clones share the
  original column (divided, plus noise that sums to zero), so the output is unchanged; the head dimension grows
  the same way: key and value channels are cloned, the queries of a channel's copies share its query (their
  query-key products sum to the original's) and are scaled by `sqrt(d'/d)` for the softmax scale;
* hidden width D -> D' with LayerNorms: zero padding changes every LayerNorm's mean and variance, so the residual
  stream is mapped by `M` (D' x D) with `M 1 = 1`, `1^T M = (D'/D) 1^T` and `M^T M = (D'/D) I`; then
  `LayerNorm0(M x) = M LayerNorm0(x)` exactly. For integer factors `M` tiles the channels (the LayerNorms' scale
  and shift tile with them, features map back by an index); otherwise `M` is a scaled orthogonal embedding
  (a Householder reflection taking the ones vector along) and the LayerNorms' scale and shift are folded into the
  layers that read them, leaving the norms at 1 and 0.

With `noise > 0`, cloned units get opposite perturbations in their consumers' columns (and cloned head channels
in their shared queries): the forward pass is unchanged and the clones diverge once trained. With `noise = 0`
exact clones receive equal gradients and never diverge. A seeded generator makes the student and the teacher
grow with the same draws.

Growth by masks (`grow_masked`, masked structural growth) instead keeps the small model's weights in the leading
slices of a freshly initialised big model (new blocks, channels, heads and MLP units drawn as from scratch, their
Adam moments zero) and preserves the function through `fade_masks`: the model's growth masks weigh the new units
by a fraction that a run raises from 0 (exactly the small model; LayerNorms over the old channels only) to 1 (the
big model as it is). Widening by copies keeps a LayerNorm network in the narrow model's subspace; fresh units let
it leave (BENCHMARKS.md, growth).
"""

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .models import PRESETS, VidropConfig, VidropModel
from .ssl import SelfDistillation

ROLES = ("weight", "exp_avg", "exp_avg_sq")
DEPTH_PLACEMENTS = ("interleaved", "end")
SHAPE_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")


@dataclass
class Grown:
    """A grown model: its configuration, state, and the map of its features `(..., D')` back to the small model's
    `(..., D)` (identity unless the hidden width grew)."""

    config: VidropConfig
    state: dict
    features_back: Callable


def _identity(features):
    return features


def _check_role(role):
    if role not in ROLES:
        raise ValueError(f"role={role!r} is not supported; allowed: {', '.join(map(repr, ROLES))}")


def _scale(role, factor):
    """How a linear factor on a weight acts on that weight's Adam moment of this role."""
    return factor**2 if role == "exp_avg_sq" else factor


def _noise_like(tensor, reference, noise, generator):
    """Gaussian noise of std `noise * std(reference)` shaped like `tensor`."""
    std = float(reference.float().std()) if reference.numel() > 1 else 0.0
    return torch.randn(tensor.shape, generator=generator, dtype=torch.float32).to(tensor.dtype) * noise * std


def _clone(tensor, sources, dim):
    """`tensor` with copies of its slices `sources` along `dim` appended."""
    return torch.cat([tensor, tensor.index_select(dim, sources)], dim=dim)


def _share(tensor, sources, dim, role, noise, generator):
    """The consumer side of cloned units: slices along `dim` for the units and their copies (`sources`), each
    group sharing its original slice equally, with zero-sum noise (weights only)."""
    size = tensor.shape[dim]
    counts = torch.bincount(torch.cat([torch.arange(size), sources]), minlength=size).to(torch.float32)
    shape = [1] * tensor.ndim
    shape[dim] = -1
    divisor = _scale(role, torch.cat([counts, counts[sources]])).reshape(shape).to(tensor.dtype)
    grown = _clone(tensor, sources, dim) / divisor
    if role == "weight" and noise > 0 and len(sources):
        copies = grown.narrow(dim, size, len(sources))
        delta = _noise_like(copies, tensor, noise, generator)
        copies += delta
        grown.index_add_(dim, sources, -delta)
    return grown


def _layer_indices(state):
    return sorted({int(m[1]) for key in state if (m := re.match(r"backbone\.encoder\.layer\.(\d+)\.", key))})


# ----------------------------------------------------------------------------------------------------------- depth


def depth_plan(num_layers, num_new, placement="interleaved"):
    """Old block index each new block follows: `interleaved` spreads them evenly, `end` appends them."""
    if placement == "end":
        return [num_layers - 1] * num_new
    if placement != "interleaved":
        raise ValueError(f"placement={placement!r} is not supported; allowed: {', '.join(DEPTH_PLACEMENTS)}")
    return [(k * num_layers) // num_new for k in range(num_new)]


def depth_order(old, num_hidden_layers, placement="interleaved"):
    """The grown stack: `(old block index, is new)` per block, each new block after the old block `depth_plan`
    gives (or a list of old block indices as `placement`)."""
    if num_hidden_layers < old:
        raise ValueError(f"num_hidden_layers={num_hidden_layers} is smaller than {old}; allowed: >= {old}")
    after = placement if isinstance(placement, (list, tuple)) else depth_plan(old, num_hidden_layers - old, placement)
    if len(after) != num_hidden_layers - old or any(not 0 <= a < old for a in after):
        raise ValueError(f"placement={after!r} must name {num_hidden_layers - old} old blocks in [0, {old})")
    order = []
    for index in range(old):
        order.append((index, False))
        order += [(index, True)] * after.count(index)
    return order


def grow_depth(config, state, num_hidden_layers, placement="interleaved", role="weight", noise=0.0, generator=None):
    """Insert `num_hidden_layers - L` blocks (where `depth_order` puts them): each a copy of the block before it
    (plus noise on its weights) whose output projections are zero."""
    _check_role(role)
    order = depth_order(config.num_hidden_layers, num_hidden_layers, placement)
    grown = {k: v for k, v in state.items() if not k.startswith("backbone.encoder.layer.")}
    for new_index, (old_index, is_new) in enumerate(order):
        prefix = f"backbone.encoder.layer.{old_index}."
        for key in sorted(k for k in state if k.startswith(prefix)):
            name = key[len(prefix):]
            tensor = state[key].clone()
            if is_new and name.startswith(("attention.proj.", "mlp.fc2.")):
                tensor.zero_()
            elif is_new and role == "weight" and noise > 0 and name.endswith(("qkv.weight", "fc1.weight")):
                tensor += _noise_like(tensor, state[key], noise, generator)
            grown[f"backbone.encoder.layer.{new_index}.{name}"] = tensor
    return Grown(VidropConfig(**{**config.to_dict(), "num_hidden_layers": num_hidden_layers}), grown, _identity)


# --------------------------------------------------------------------------------------------------------- MLP width


def grow_mlp(config, state, intermediate_size, role="weight", noise=0.0, generator=None):
    """Widen every block's MLP to `intermediate_size` hidden units by cloning units round-robin."""
    _check_role(role)
    old = config.intermediate_size
    if intermediate_size < old:
        raise ValueError(f"intermediate_size={intermediate_size} is smaller than {old}; allowed: >= {old}")
    sources = torch.arange(intermediate_size - old) % old
    grown = dict(state)
    for index in _layer_indices(state):
        prefix = f"backbone.encoder.layer.{index}.mlp."
        grown[prefix + "fc1.weight"] = _clone(state[prefix + "fc1.weight"], sources, 0)  # (I', D)
        grown[prefix + "fc1.bias"] = _clone(state[prefix + "fc1.bias"], sources, 0)  # (I',)
        grown[prefix + "fc2.weight"] = _share(state[prefix + "fc2.weight"], sources, 1, role, noise, generator)
    return Grown(VidropConfig(**{**config.to_dict(), "intermediate_size": intermediate_size}), grown, _identity)


# ------------------------------------------------------------------------------------------------------ hidden width


def residual_map(old, new):
    """`(M (new, old), tiles)`: the map of the residual stream. `M 1 = 1`, `1^T M = (new/old) 1^T`,
    `M^T M = (new/old) I`; it tiles the channels when `new` is a multiple of `old`."""
    if new % old == 0:
        return torch.eye(old).repeat(new // old, 1), True
    ones_old = torch.full((old,), 1 / math.sqrt(old), dtype=torch.float64)
    ones_new = torch.full((new,), 1 / math.sqrt(new), dtype=torch.float64)
    embedded = torch.cat([torch.eye(old, dtype=torch.float64), torch.zeros(new - old, old, dtype=torch.float64)])
    w = torch.cat([ones_old, torch.zeros(new - old, dtype=torch.float64)]) - ones_new  # reflect [u; 0] onto v
    reflected = embedded - 2 * torch.outer(w, w @ embedded) / (w @ w)  # (new, old), orthonormal columns
    return (math.sqrt(new / old) * reflected).float(), False


def _grow_heads(state, prefix, heads, head_dim, new_heads, new_head_dim, role, noise, generator):
    """Reorganise one block's attention from `heads x head_dim` to `new_heads x new_head_dim` channels (its inner
    width grows; the residual width is grown afterwards).

    A head's new channels clone its channels: keys and values are copied, the queries of a channel and of its
    copies share the original query (so their query-key products sum to the original's), times `sqrt(d'/d)`
    for the softmax scale, and the output columns of a value and its copies share the original column. New
    heads clone existing ones. Every new channel is live from the start, and noise in the shared queries and
    columns separates the copies.
    """
    channel_sources = torch.arange(new_head_dim - head_dim) % head_dim
    head_sources = torch.arange(new_heads - heads) % heads
    query_scale = _scale(role, math.sqrt(new_head_dim / head_dim))
    grown = {}
    for name in ("qkv.weight", "qkv.bias"):
        if prefix + name not in state:
            continue
        old = state[prefix + name]
        query, key, value = old.reshape(3, heads, head_dim, -1)  # (h, d, D) each, or (h, d, 1) for the bias
        query = _share(query, channel_sources, 1, role, noise, generator) * query_scale  # (h, d', D or 1)
        key, value = (_clone(part, channel_sources, 1) for part in (key, value))
        tensor = _clone(torch.stack([query, key, value]), head_sources, 1)  # (3, h', d', D or 1)
        grown[prefix + name] = tensor.reshape(3 * new_heads * new_head_dim, *old.shape[1:])
    proj = state[prefix + "proj.weight"].reshape(-1, heads, head_dim)  # (D, h, d)
    proj = _share(proj, channel_sources, 2, role, noise, generator)  # (D, h, d')
    grown[prefix + "proj.weight"] = _share(proj, head_sources, 1, role, noise, generator).reshape(proj.shape[0], -1)
    return grown


def _rows(tensor, matrix, role, dim=0):
    """`matrix` applied along `dim` of `tensor`; elementwise squared for `exp_avg_sq`."""
    matrix = matrix.to(tensor.dtype)
    if role == "exp_avg_sq":
        matrix = matrix.square()
    return torch.movedim(torch.tensordot(matrix, torch.movedim(tensor, dim, 0), dims=1), 0, dim)


def _check_width(config, hidden_size, num_attention_heads):
    """The heads of the grown width (default: same head dimension when it divides, else same heads), or an error."""
    old, heads = config.hidden_size, config.num_attention_heads
    head_dim = old // heads
    if hidden_size < old:
        raise ValueError(f"hidden_size={hidden_size} is smaller than {old}; allowed: >= {old}")
    if num_attention_heads is None:
        num_attention_heads = hidden_size // head_dim if hidden_size % head_dim == 0 else heads
    if (num_attention_heads < heads or hidden_size % num_attention_heads
            or hidden_size // num_attention_heads < head_dim):
        raise ValueError(
            f"num_attention_heads={num_attention_heads} for hidden_size={hidden_size}; allowed: at least {heads} heads "
            f"of at least {head_dim} channels, dividing hidden_size"
        )
    if config.position_embedding_type == "rope_3d" and hidden_size // num_attention_heads != head_dim:
        raise ValueError(f"rope_3d turns {head_dim}-channel heads; allowed: growth that keeps the head dimension")
    if hidden_size % old and config.loss_type != "dino_ibot":
        raise ValueError(
            f"loss_type={config.loss_type!r} regresses features elementwise, which a non-integer width factor "
            f"({old} -> {hidden_size}) cannot map; allowed: a multiple of {old}, or loss_type='dino_ibot'"
        )
    if hidden_size % old and not config.qkv_bias:
        raise ValueError(f"qkv_bias=False leaves no bias to fold LayerNorm shifts into; allowed: a multiple of {old}")
    return num_attention_heads


def grow_width(config, state, hidden_size, num_attention_heads=None, role="weight", noise=0.0, generator=None):
    """Widen the residual stream to `hidden_size` and the attention to `num_attention_heads` heads of
    `hidden_size / num_attention_heads` channels (see `_check_width` for the default)."""
    _check_role(role)
    old, heads = config.hidden_size, config.num_attention_heads
    num_attention_heads = _check_width(config, hidden_size, num_attention_heads)
    matrix, tiles = residual_map(old, hidden_size)  # (D', D)
    reader_map = matrix * (old / hidden_size)  # M^+, the left inverse of M
    sources = torch.arange(hidden_size - old) % old  # which channel each new one copies, when tiling
    grown = dict(state)
    layers = _layer_indices(state)
    for index in layers:
        grown.update(_grow_heads(grown, f"backbone.encoder.layer.{index}.attention.", heads, old // heads,
                                 num_attention_heads, hidden_size // num_attention_heads, role, noise, generator))

    def grow_norm(norm):
        if tiles:
            for part in ("weight", "bias"):
                grown[f"{norm}.{part}"] = _clone(state[f"{norm}.{part}"], sources, 0)
        else:  # folded into its readers
            grown[f"{norm}.weight"] = torch.ones(hidden_size) if role == "weight" else torch.zeros(hidden_size)
            grown[f"{norm}.bias"] = torch.zeros(hidden_size)

    def grow_reader(layer, norm):
        """A linear layer reading the residual stream, through the LayerNorm `norm` or directly."""
        weight = grown[f"{layer}.weight"]
        if tiles:
            grown[f"{layer}.weight"] = _share(weight, sources, 1, role, noise, generator)
            return
        if norm is not None:
            gamma, beta = state[f"{norm}.weight"], state[f"{norm}.bias"]
            if role == "weight":
                grown[f"{layer}.bias"] = grown[f"{layer}.bias"] + weight @ beta
            weight = weight * _scale(role, gamma)
        grown[f"{layer}.weight"] = _rows(weight, reader_map, role, dim=1)

    for index in layers:
        prefix = f"backbone.encoder.layer.{index}."
        grow_reader(prefix + "attention.qkv", prefix + "norm1")
        grow_reader(prefix + "mlp.fc1", prefix + "norm2")
        grow_norm(prefix + "norm1")
        grow_norm(prefix + "norm2")
        for writer in ("attention.proj", "mlp.fc2"):
            for part in ("weight", "bias"):
                grown[f"{prefix}{writer}.{part}"] = _rows(grown[f"{prefix}{writer}.{part}"], matrix, role)
    final_norm = "backbone.layernorm" if config.use_final_layernorm else None
    for head in ("cls_head", "patch_head"):
        if f"{head}.mlp.0.weight" in state:
            grow_reader(f"{head}.mlp.0", final_norm)
            if config.loss_type != "dino_ibot":  # a feature predictor writes residual-stream features
                for part in ("weight", "bias"):
                    grown[f"{head}.mlp.2.{part}"] = _rows(state[f"{head}.mlp.2.{part}"], matrix, role)
    if final_norm:
        grow_norm(final_norm)
    for name in ("projection.weight", "projection.bias"):
        key = f"backbone.embeddings.patch_embeddings.{name}"
        grown[key] = _rows(state[key], matrix, role)
    for name in ("mask_token", "cls_token", "position_embeddings"):
        key = f"backbone.embeddings.{name}"
        if key in state:  # tokens (1, 1, D); a learned table (1, D, T', H', W')
            grown[key] = _rows(state[key], matrix, role, dim=2 if name.endswith("token") else 1)
    changes = {"hidden_size": hidden_size, "num_attention_heads": num_attention_heads}
    if config.position_embedding_type.startswith("sincos"):  # the fixed table keeps its width, mapped by M
        changes["position_embedding_dim"] = config.position_embedding_dim
        if role == "weight":
            projection = state.get("backbone.embeddings.position_projection", torch.eye(old))
            grown["backbone.embeddings.position_projection"] = _rows(projection, matrix, role)
    gamma, beta = (state["backbone.layernorm.weight"], state["backbone.layernorm.bias"]) if final_norm else (1, 0)

    def features_back(features):
        """`(..., D')` features of the grown model -> the small model's `(..., D)`."""
        if tiles:
            return features[..., :old]
        return (features @ reader_map.to(features.dtype)) * gamma + beta

    return Grown(VidropConfig(**{**config.to_dict(), **changes}), grown, features_back)


# ------------------------------------------------------------------------------------------------------- composite


def target_config(config, target):
    """The configuration to grow `config` into: a preset name (its shape, everything else kept), a
    `VidropConfig`, or a dict of fields. Shrinking any shape field is a `ValueError`."""
    if isinstance(target, str):
        if target not in PRESETS:
            raise ValueError(f"target={target!r} is not a preset; allowed: {', '.join(PRESETS)} or a config")
        target = {**config.to_dict(), **PRESETS[target]}
    elif isinstance(target, VidropConfig):
        target = target.to_dict()
    elif "hidden_size" in target and "num_attention_heads" not in target:
        target = {**target, "num_attention_heads": _check_width(config, target["hidden_size"], None)}
    target = VidropConfig(**{**config.to_dict(), **target})
    smaller = [f"{f}={getattr(target, f)} < {getattr(config, f)}" for f in SHAPE_FIELDS
               if getattr(target, f) < getattr(config, f)]
    if smaller:
        raise ValueError(f"cannot grow to a smaller shape: {', '.join(smaller)}; allowed: each at least the current")
    for name in ("tubelet_size", "patch_size", "num_channels", "position_embedding_type", "use_cls_token",
                 "use_final_layernorm", "hidden_act", "qkv_bias"):
        if getattr(target, name) != getattr(config, name):
            raise ValueError(
                f"{name} differs ({getattr(config, name)!r} -> {getattr(target, name)!r}); allowed: growth changes "
                "only hidden_size, num_attention_heads, intermediate_size, num_hidden_layers"
            )
    # a fixed sine-cosine table keeps its width (mapped into the wider stream by the position projection)
    sincos = config.position_embedding_type.startswith("sincos")
    position_embedding_dim = config.position_embedding_dim if sincos else None
    return VidropConfig(**{**target.to_dict(), "position_embedding_dim": position_embedding_dim})


def grow(config, state, target, role="weight", noise=0.0, seed=0, placement="interleaved"):
    """Grow `(config, state)` (the `backbone.` / `cls_head.` / `patch_head.` layout) into `target` (see
    `target_config`): hidden width and heads, then MLP width, then depth. The same `seed` gives the same draws,
    so a student and its teacher (and any role) grow alike."""
    target = target_config(config, target)
    generator = torch.Generator().manual_seed(seed)
    grown = Grown(config, dict(state), _identity)
    if (target.hidden_size, target.num_attention_heads) != (config.hidden_size, config.num_attention_heads):
        grown = grow_width(grown.config, grown.state, target.hidden_size, target.num_attention_heads, role, noise,
                           generator)
    features_back = grown.features_back
    if target.intermediate_size != config.intermediate_size:
        grown = grow_mlp(grown.config, grown.state, target.intermediate_size, role, noise, generator)
    if target.num_hidden_layers != config.num_hidden_layers:
        grown = grow_depth(grown.config, grown.state, target.num_hidden_layers, placement, role, noise, generator)
    return Grown(target, grown.state, features_back)


# ---------------------------------------------------------------------------------------------- growth by masks


def _check_masked(config, target):
    """Errors for a growth `grow_masked` cannot preserve."""
    heads, new_heads = config.num_attention_heads, target.num_attention_heads
    head_dim, new_head_dim = config.hidden_size // heads, target.hidden_size // new_heads
    if new_heads < heads or new_head_dim < head_dim:
        raise ValueError(f"num_attention_heads={new_heads} of {new_head_dim} channels; allowed: at least {heads} "
                         f"heads of at least {head_dim} channels")
    if config.position_embedding_type == "rope_3d" and new_head_dim != head_dim:
        raise ValueError(f"rope_3d turns {head_dim}-channel heads; allowed: growth that keeps the head dimension")
    if target.hidden_size != config.hidden_size and config.loss_type != "dino_ibot":
        raise ValueError(f"loss_type={config.loss_type!r} regresses every residual channel, new ones included; "
                         "allowed: growth by masks of the hidden width with loss_type='dino_ibot'")


def _fresh_state(target, role, seed):
    """A freshly initialised student of `target` in the `grow` layout (seeded, so the student and its teacher
    draw alike), or zeros of its shapes for Adam's moments (shapes taken on the meta device: nothing drawn)."""
    if role != "weight":
        with torch.device("meta"):
            shapes = SelfDistillation(target).student.state_dict()
        return {k: torch.zeros(v.shape) for k, v in shapes.items()}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return {k: v.float() for k, v in SelfDistillation(target).student.state_dict().items()}


def grow_masked(config, state, target, role="weight", seed=0, placement="interleaved", fresh=None):
    """Grow `(config, state)` into `target` (see `target_config`) by masks: the small model's weights fill the
    leading slices of a fresh `target` model (its old blocks where `depth_order` puts them; per head, its leading
    channels), every other unit stays as drawn (Adam's moments: zero), and queries are scaled by `sqrt(d'/d)`
    for the softmax scale. The grown model computes the small model's function under `fade_masks(..., 0.0)`;
    features map back by taking the first `D` channels.

    `fresh`: the `.state` of another `grow_masked` weight growth from the same shapes (read, not changed), whose
    new units are taken instead of drawing the target model again with `seed`: a teacher grown after its student
    gets the student's draws."""
    _check_role(role)
    target = target_config(config, target)
    _check_masked(config, target)
    if fresh is not None and role != "weight":
        raise ValueError(f"fresh units for role={role!r}; allowed: role='weight' (moments start at zero)")
    heads, head_dim = config.num_attention_heads, config.hidden_size // config.num_attention_heads
    new_heads, new_head_dim = target.num_attention_heads, target.hidden_size // target.num_attention_heads
    order = depth_order(config.num_hidden_layers, target.num_hidden_layers, placement)
    query_scale = _scale(role, math.sqrt(new_head_dim / head_dim))
    grown = {}
    if fresh is None:
        drawn = _fresh_state(target, role, seed)
    else:  # filled in place below, so copied
        drawn = {k: v.to(torch.float32, copy=True) for k, v in fresh.items()}
    for key, big in drawn.items():
        source = key
        if match := re.match(r"backbone\.encoder\.layer\.(\d+)\.(.*)", key):
            old_index, is_new = order[int(match[1])]
            source = f"backbone.encoder.layer.{old_index}.{match[2]}"
            if is_new:
                if source in state:
                    grown[key] = big
                continue
        small = state.get(source)
        if small is None and key == "backbone.embeddings.position_projection" and role == "weight":
            small = torch.eye(config.hidden_size, target.position_embedding_dim)  # the table filled the channels
        if small is None:
            continue
        shape, dtype = big.shape, small.dtype
        if key.endswith(("attention.qkv.weight", "attention.qkv.bias")):  # (3 h d, [D])
            small = small.reshape(3, heads, head_dim, *small.shape[1:])
            big = big.reshape(3, new_heads, new_head_dim, *big.shape[1:])
        elif key.endswith("attention.proj.weight"):  # (D, h d)
            small = small.reshape(-1, heads, head_dim)
            big = big.reshape(-1, new_heads, new_head_dim)
        big[tuple(slice(0, size) for size in small.shape)] = small.float()
        if key.endswith(("attention.qkv.weight", "attention.qkv.bias")):
            big[0, :heads, :head_dim] *= query_scale
        grown[key] = big.reshape(shape).to(dtype)
    old_width = config.hidden_size
    return Grown(target, grown, lambda features: features[..., :old_width])


def fade_masks(config, target, fraction, placement="interleaved", device=None):
    """The growth masks (`VidropModel.set_growth_masks`) of a `grow_masked` model grown from `config` into
    `target`, weighing its new units by `fraction` (0: the small model's function; 1: plain, returns None).

    Returns `{submodule name: mask}`: residual-stream masks `(D',)` (ones on the old channels) for the embeddings,
    every LayerNorm and every block's writes (times `fraction` for a new block), `(h', D'/h')` masks of the old
    heads' channels and `(intermediate_size',)` masks of the old blocks' MLP units."""
    if fraction >= 1:
        return None

    def mask(old, new):
        return torch.cat([torch.ones(old), torch.full((new - old,), float(fraction))]).to(device)

    stream = mask(config.hidden_size, target.hidden_size)
    head_dim = config.hidden_size // config.num_attention_heads
    channels = torch.full((target.num_attention_heads, target.hidden_size // target.num_attention_heads),
                          float(fraction), device=device)
    channels[:config.num_attention_heads, :head_dim] = 1
    masks = {"embeddings": stream, "layernorm": stream}
    for index, (_, is_new) in enumerate(depth_order(config.num_hidden_layers, target.num_hidden_layers, placement)):
        prefix = f"encoder.layer.{index}"
        masks.update({prefix: stream * fraction if is_new else stream, f"{prefix}.norm1": stream,
                      f"{prefix}.norm2": stream})
        if not is_new:
            masks[f"{prefix}.attention"] = channels
            masks[f"{prefix}.mlp"] = mask(config.intermediate_size, target.intermediate_size)
    return masks


# --------------------------------------------------------------------------- bare models, Adam's state, folders


def grow_model(config, state_dict, target, noise=0.0, seed=0, placement="interleaved"):
    """`grow` for a bare `VidropModel` state dict (no heads)."""
    grown = grow(config, {f"backbone.{k}": v for k, v in state_dict.items()}, target, "weight", noise, seed, placement)
    return Grown(grown.config, {k[len("backbone."):]: v for k, v in grown.state.items()}, grown.features_back)


def grow_adam_state(config, parameters, named_state, target, seed=0, placement="interleaved", masked=False):
    """Adam's per-parameter state `{name: {"step", "exp_avg", "exp_avg_sq"}}` mapped onto the parameters `grow`
    (or, `masked`, `grow_masked`) makes from `parameters` (`{name: tensor}`, names in the `grow` layout). A
    parameter without state (never updated) starts from zero moments; the step counter is kept."""
    named_state = {name: state for name, state in named_state.items() if state}  # {}: never updated
    step = next((s["step"] for s in named_state.values() if "step" in s), None)
    moments = {}
    for role in ("exp_avg", "exp_avg_sq"):
        state = {n: named_state[n][role] if n in named_state else torch.zeros_like(p) for n, p in parameters.items()}
        moments[role] = (grow_masked(config, state, target, role, seed, placement) if masked
                         else grow(config, state, target, role, 0.0, seed, placement)).state
    grown = {name: {"exp_avg": moments["exp_avg"][name], "exp_avg_sq": moments["exp_avg_sq"][name]}
             for name in moments["exp_avg"]}
    if step is not None:
        for state in grown.values():
            state["step"] = step.clone() if torch.is_tensor(step) else step
    return grown


def expand_folder(source, target, output_dir, noise=0.0, seed=0, placement="interleaved"):
    """Grow the `VidropModel` folder `source` into `target` (a preset name, or a JSON file of `VidropConfig`
    fields) and save it in `output_dir`; returns the `Grown` result."""
    model = VidropModel.from_pretrained(source)
    if isinstance(target, str) and target.endswith(".json"):
        target = json.loads(Path(target).read_text())
    grown = grow_model(model.config, model.state_dict(), target, noise, seed, placement)
    big = VidropModel(grown.config)
    big.load_state_dict(grown.state)
    big.save_pretrained(output_dir)
    return grown
