"""The ViDROP sparse video encoder: a pre-LayerNorm ViT over tubelet tokens that encodes only kept tokens.

Token index convention everywhere: `n = (t * H' + h) * W' + w` over the tubelet grid `(T', H', W')`, the order
of a flattened Conv3d output. This file imports only torch, transformers and its sibling configuration file,
so that it can be exported as Hub remote code.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_outputs import ImageClassifierOutput
from transformers.utils import ModelOutput

from .configuration_vidrop import VidropConfig


@dataclass
class VidropModelOutput(ModelOutput):
    """Output of `VidropModel`.

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(B, 1 + K, D)`, or `(B, K, D)` without a CLS token):
            features (after the final LayerNorm, if any) of the CLS token and of the encoded tokens, in
            `keep_indices` order.
        pooler_output (`torch.FloatTensor` of shape `(B, D)`): the CLS feature, or the mean of the token
            features when the model has no CLS token.
        keep_indices (`torch.LongTensor` of shape `(B, K)`): grid index of every encoded token (all `N` tokens
            for a dense call).
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): input of every block and output of the last,
            each `(B, 1 + K, D)`, when `output_hidden_states=True`.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    keep_indices: torch.LongTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


def sincos_1d(positions, dim):
    """Sine-cosine embedding of 1D `positions` `(L,)` float -> `(L, dim)`, `dim` even (Vaswani et al.)."""
    omega = torch.arange(dim // 2, dtype=torch.float64, device=positions.device) / (dim / 2)
    omega = 1.0 / 10000**omega  # (dim/2,)
    angles = positions.to(torch.float64)[:, None] * omega[None, :]  # (L, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def sincos_3d_position_embeddings(grid, dim, device=None):
    """Fixed separable 3D sine-cosine table for a token grid `(T', H', W')` -> `(N, dim)` float32.

    A third of the channels (rounded down to an even number) encodes each of time, height and width; the
    few channels left over are zero. Any grid works, so small crops and other frame counts need no retraining.
    """
    axis_dim = 2 * (dim // 6)
    t, h, w = grid
    emb_t, emb_h, emb_w = (
        sincos_1d(torch.arange(size, device=device), axis_dim) for size in (t, h, w)
    )  # (T', a), (H', a), (W', a)
    table = torch.zeros(t, h, w, dim, dtype=torch.float64, device=device)
    table[..., :axis_dim] = emb_t[:, None, None, :]
    table[..., axis_dim : 2 * axis_dim] = emb_h[None, :, None, :]
    table[..., 2 * axis_dim : 3 * axis_dim] = emb_w[None, None, :, :]
    return table.reshape(t * h * w, dim).float()


def sincos_1d_position_embeddings(num_positions, dim):
    """VideoMAE's fixed table over `num_positions` flattened grid positions -> `(num_positions, dim)` float32.

    Channel `j` holds `sin` (even `j`) or `cos` (odd `j`) of `position / 10000^(2 * (j // 2) / dim)`: sine and
    cosine interleaved, unlike `sincos_1d`, which is what VideoMAE checkpoints were trained with.
    """
    exponent = 2 * (torch.arange(dim, dtype=torch.float64) // 2) / dim  # (dim,)
    angles = torch.arange(num_positions, dtype=torch.float64)[:, None] / 10000**exponent[None, :]  # (L, dim)
    table = angles.clone()
    table[:, 0::2] = angles[:, 0::2].sin()
    table[:, 1::2] = angles[:, 1::2].cos()
    return table.float()


def rope_3d_angles(keep_indices, grid, head_dim):
    """Rotation angles of V-JEPA 2's 3D rotary embedding for the tokens `keep_indices` `(B, K)` of a grid
    `(T', H', W')` -> `(B, K, head_dim)` float32.

    Each of time, height and width rotates `a = 2 * (head_dim // 3 // 2)` channels of every head, in that order;
    the last `head_dim - 3a` channels are not rotated (angle 0). Within an axis, channel `j` of the `a` turns by
    `position * 10000^(-(j mod a/2) / (a/2))`: the angles repeat by halves while `apply_rotary` pairs neighbouring
    channels, so the two channels of a pair turn by different angles. That is V-JEPA 2's layout, which its
    checkpoints were trained with, and it is reproduced as it is.
    """
    _, grid_h, grid_w = grid
    coordinates = (keep_indices // (grid_h * grid_w), keep_indices // grid_w % grid_h, keep_indices % grid_w)
    axis_dim = 2 * (head_dim // 3 // 2)
    omega = torch.arange(axis_dim // 2, dtype=torch.float32, device=keep_indices.device) / (axis_dim / 2)
    omega = 1.0 / 10000**omega  # (a/2,)
    parts = []
    for coordinate in coordinates:
        angles = coordinate.float()[..., None] * omega  # (B, K, a/2)
        parts += [angles, angles]
    parts.append(keep_indices.new_zeros(*keep_indices.shape, head_dim - 3 * axis_dim, dtype=torch.float32))
    return torch.cat(parts, dim=-1)  # (B, K, head_dim)


def apply_rotary(x, cos, sin):
    """Rotate channel pairs `(2i, 2i + 1)` of `x` `(B, h, L, d)` by the angles whose `cos`, `sin` are
    `(B, 1, L, d)`: `x * cos + (-x[2i + 1], x[2i]) * sin`."""
    pairs = x.unflatten(-1, (-1, 2))  # (B, h, L, d/2, 2)
    swapped = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)  # (B, h, L, d)
    return x * cos + swapped * sin


def drop_path(x, drop_prob, training):
    """Stochastic depth: zero whole samples of the residual branch `x` `(B, ...)` with probability `drop_prob`."""
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1.0 - drop_prob
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    return x * x.new_empty(shape).bernoulli_(keep_prob) / keep_prob


def _masked(x, growth_mask):
    """`x` `(..., C)` times a growth mask `(C,)` (None: `x` itself)."""
    return x if growth_mask is None else x * growth_mask.to(x.dtype)


class VidropLayerNorm(nn.LayerNorm):
    """LayerNorm over the residual stream that a growth can fade new channels into.

    `growth_mask` `(D,)` (None outside a fade, set by `VidropModel.set_growth_masks`) weighs each channel in the
    mean and variance and scales the output: weight 1 for the channels of the model that was grown, 0 for the new
    ones at the growth (the norm is then exactly the small model's on its channels, and 0 on the new ones) and
    rising to 1 as they are faded in, where it is plain LayerNorm again.
    """

    growth_mask = None

    def forward(self, hidden_states):
        """`(..., D)` -> `(..., D)`."""
        if self.growth_mask is None:
            return super().forward(hidden_states)
        weights = self.growth_mask.float() / self.growth_mask.float().sum()  # (D,)
        x = hidden_states.float()
        mean = (x * weights).sum(-1, keepdim=True)  # (..., 1)
        variance = ((x - mean).square() * weights).sum(-1, keepdim=True)  # (..., 1)
        normed = (x - mean) * torch.rsqrt(variance + self.eps) * self.weight.float() + self.bias.float()
        return (normed * self.growth_mask.float()).to(hidden_states.dtype)


class VidropTubeletProjection(nn.Conv3d):
    """The tubelet embedding's Conv3d (kernel = stride), applied as a matrix product to flattened tubelets.

    Keeping the `nn.Conv3d` parameters keeps the checkpoint layout of VideoMAE-style models; calling it as a
    module (not reading its weight from the parent) lets ZeRO-3 gather its parameters in its own forward hook.
    """

    def forward(self, tubelets):
        """`(B, K, C * t * p * p)` tubelets, flattened in `(C, t, p, p)` order -> `(B, K, D)`."""
        return F.linear(tubelets.to(self.weight.dtype), self.weight.flatten(1), self.bias)


class VidropPatchEmbeddings(nn.Module):
    """Tubelet embedding, a Conv3d with kernel = stride `(t, p, p)`, applied only to the tubelets asked for.

    The Conv3d is evaluated as a matrix product on gathered tubelets, so the cost is proportional to the number
    of kept tokens and dropped pixels are never read.
    """

    def __init__(self, config):
        super().__init__()
        self.tubelet_size = config.tubelet_size
        self.patch_size = config.patch_size
        self.num_channels = config.num_channels
        kernel = (config.tubelet_size, config.patch_size, config.patch_size)
        self.projection = VidropTubeletProjection(
            config.num_channels, config.hidden_size, kernel_size=kernel, stride=kernel
        )

    def grid(self, pixel_values):
        """The token grid `(T', H', W')` of `pixel_values` `(B, T, C, H, W)`, after checking its shape."""
        if pixel_values.ndim != 5:
            raise ValueError(
                f"pixel_values has shape {tuple(pixel_values.shape)}; allowed: 5 dimensions (B, T, C, H, W)"
            )
        _, frames, channels, height, width = pixel_values.shape
        if channels != self.num_channels:
            raise ValueError(f"pixel_values has {channels} channels (dim 2); allowed: {self.num_channels}")
        if frames % self.tubelet_size:
            raise ValueError(
                f"pixel_values has {frames} frames; allowed: a multiple of tubelet_size={self.tubelet_size}"
            )
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(
                f"pixel_values has height x width {height}x{width}; allowed: multiples of patch_size={self.patch_size}"
            )
        return frames // self.tubelet_size, height // self.patch_size, width // self.patch_size

    def forward(self, pixel_values, keep_indices):
        """`pixel_values` `(B, T, C, H, W)`, `keep_indices` `(B, K)` -> token embeddings `(B, K, D)`."""
        batch, frames, channels, height, width = pixel_values.shape
        t, p = self.tubelet_size, self.patch_size
        grid_t, grid_h, grid_w = frames // t, height // p, width // p
        # (B, T', t, C, H', p, W', p) viewed as (B, T', H', W', C, t, p, p): no copy yet.
        tubelets = pixel_values.reshape(batch, grid_t, t, channels, grid_h, p, grid_w, p)
        tubelets = tubelets.permute(0, 1, 4, 6, 3, 2, 5, 7)
        # Advanced indexing copies only the kept tubelets: (B, K, C, t, p, p).
        index_t = keep_indices // (grid_h * grid_w)
        index_h = keep_indices // grid_w % grid_h
        index_w = keep_indices % grid_w
        batch_index = torch.arange(batch, device=keep_indices.device)[:, None]
        kept = tubelets[batch_index, index_t, index_h, index_w].flatten(2)  # (B, K, C*t*p*p)
        return self.projection(kept)  # (B, K, D)


class VidropEmbeddings(nn.Module):
    """Tubelet embeddings of the kept tokens, with mask token, position embeddings and CLS token.

    `growth_mask` `(D,)` (None outside a growth's fade) scales the channels the embeddings write to the stream.
    """

    growth_mask = None

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.patch_embeddings = VidropPatchEmbeddings(config)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size)) if config.use_cls_token else None
        if config.position_embedding_type == "learned":
            self.position_embeddings = nn.Parameter(torch.zeros(1, config.hidden_size, *config.position_embedding_grid))
        else:
            self.position_embeddings = None
        if config.position_embedding_type.startswith("sincos") and config.position_embedding_dim != config.hidden_size:
            # a grown model: its fixed table keeps its width and is mapped into the wider residual stream
            self.register_buffer("position_projection", torch.zeros(config.hidden_size, config.position_embedding_dim))
        else:
            self.position_projection = None
        self._fixed_tables = {}  # (grid, device) -> (N, D) fixed table; a cache, not state

    def position_table(self, grid, device):
        """Additive position embeddings for a token grid `(T', H', W')` -> `(N, D)`; `None` for `rope_3d`."""
        kind = self.config.position_embedding_type
        if kind == "rope_3d":
            return None
        if kind == "learned":
            return self._resized(self.position_embeddings, grid)
        key = (tuple(grid), device)
        if key not in self._fixed_tables:
            dim = self.config.position_embedding_dim
            if kind == "sincos_3d":
                table = sincos_3d_position_embeddings(grid, dim, device=device)
            else:  # sincos_1d: VideoMAE's table lives on the grid it was trained at
                table_grid = self.config.position_embedding_grid
                table = sincos_1d_position_embeddings(math.prod(table_grid), dim)
                table = table.to(device).transpose(0, 1).reshape(1, -1, *table_grid)  # (1, d, T0', H0', W0')
                table = self._resized(table, grid)
            self._fixed_tables[key] = table  # (N, d)
        table = self._fixed_tables[key]
        if self.position_projection is not None:
            table = table @ self.position_projection.to(table.dtype).T  # (N, d) -> (N, D)
        return table

    @staticmethod
    def _resized(table, grid):
        """A table `(1, D, T0', H0', W0')` at `grid` (trilinear when it differs) -> `(N, D)`."""
        if tuple(table.shape[2:]) != tuple(grid):
            table = F.interpolate(table, size=grid, mode="trilinear", align_corners=False)
        return table.flatten(2)[0].transpose(0, 1)

    def forward(self, pixel_values, keep_indices=None, mask=None):
        """Embed a clip.

        Args:
            pixel_values: `(B, T, C, H, W)`.
            keep_indices: `(B, K)` int64 grid indices of the tokens to encode; `None` keeps all `N`.
            mask: `(B, K)` bool, True where the token is replaced by the mask token; `None` masks nothing.

        Returns:
            `(embeddings (B, [1 +] K, D), keep_indices (B, K))`.
        """
        grid = self.patch_embeddings.grid(pixel_values)
        batch, num_tokens = pixel_values.shape[0], math.prod(grid)
        if keep_indices is None:
            keep_indices = torch.arange(num_tokens, device=pixel_values.device).expand(batch, num_tokens)
        elif keep_indices.ndim != 2 or keep_indices.shape[0] != batch or keep_indices.dtype != torch.long:
            raise ValueError(
                f"keep_indices has shape {tuple(keep_indices.shape)} and dtype {keep_indices.dtype}; "
                f"allowed: (B={batch}, K) int64 indices into the {num_tokens} tokens of the grid {grid}"
            )
        embeddings = self.patch_embeddings(pixel_values, keep_indices)  # (B, K, D)
        if mask is not None:
            if mask.shape != keep_indices.shape or mask.dtype != torch.bool:
                raise ValueError(
                    f"mask has shape {tuple(mask.shape)} and dtype {mask.dtype}; "
                    f"allowed: bool of the shape of keep_indices {tuple(keep_indices.shape)}"
                )
            embeddings = torch.where(mask[..., None], self.mask_token.to(embeddings.dtype), embeddings)
        table = self.position_table(grid, embeddings.device)  # (N, D) or None
        if table is not None:
            embeddings = embeddings + table.to(embeddings.dtype)[keep_indices]  # (B, K, D)
        if self.cls_token is not None:
            cls = self.cls_token.to(embeddings.dtype).expand(batch, -1, -1)  # (B, 1, D)
            embeddings = torch.cat([cls, embeddings], dim=1)
        return _masked(embeddings, self.growth_mask), keep_indices


class VidropSelfAttention(nn.Module):
    """Multi-head self-attention through `torch.nn.functional.scaled_dot_product_attention`.

    `growth_mask` `(h, D/h)` (None outside a growth's fade) scales each head channel's query and output.
    """

    growth_mask = None

    def __init__(self, config):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=config.qkv_bias)
        self.proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states, rotary=None):
        """`(B, L, D)` -> `(B, L, D)`; `rotary`, the `(cos, sin)` of `rope_3d` `(B, 1, L, D/h)`, turns queries and
        keys."""
        batch, length, dim = hidden_states.shape
        qkv = self.qkv(hidden_states).reshape(batch, length, 3, self.num_heads, dim // self.num_heads)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, h, L, D/h)
        if rotary is not None:
            query, key = apply_rotary(query, *rotary), apply_rotary(key, *rotary)
        mask = None if self.growth_mask is None else self.growth_mask[:, None]  # (h, 1, D/h)
        context = F.scaled_dot_product_attention(_masked(query, mask), key, value)  # (B, h, L, D/h)
        context = _masked(context, mask)
        return self.proj(context.transpose(1, 2).reshape(batch, length, dim))


class VidropMLP(nn.Module):
    """The block's feed-forward network: `D -> intermediate_size -> D`; `growth_mask` `(intermediate_size,)` (None
    outside a growth's fade) scales its hidden units."""

    growth_mask = None

    def __init__(self, config):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = ACT2FN[config.hidden_act]
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states):
        """`(B, L, D)` -> `(B, L, D)`."""
        return self.fc2(_masked(self.act(self.fc1(hidden_states)), self.growth_mask))


class VidropLayer(nn.Module):
    """One pre-LayerNorm transformer block with stochastic depth; `growth_mask` `(D,)` (None outside a growth's
    fade) scales what it writes to the residual stream."""

    growth_mask = None

    def __init__(self, config, drop_path_rate=0.0):
        super().__init__()
        self.norm1 = VidropLayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = VidropSelfAttention(config)
        self.norm2 = VidropLayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = VidropMLP(config)
        self.drop_path_rate = drop_path_rate

    def forward(self, hidden_states, rotary=None):
        """`(B, L, D)` -> `(B, L, D)`; `rotary` as in `VidropSelfAttention`."""
        attended = _masked(self.attention(self.norm1(hidden_states), rotary), self.growth_mask)
        hidden_states = hidden_states + drop_path(attended, self.drop_path_rate, self.training)
        mixed = _masked(self.mlp(self.norm2(hidden_states)), self.growth_mask)
        return hidden_states + drop_path(mixed, self.drop_path_rate, self.training)


class VidropEncoder(nn.Module):
    """The stack of blocks, with optional gradient checkpointing per block."""

    def __init__(self, config):
        super().__init__()
        rates = torch.linspace(0, config.drop_path_rate, config.num_hidden_layers, device="cpu").tolist()
        self.layer = nn.ModuleList([VidropLayer(config, rate) for rate in rates])
        self.gradient_checkpointing = False

    def forward(self, hidden_states, rotary=None, output_hidden_states=False):
        """`(B, L, D)` -> `(last (B, L, D), all hidden states or None)`; `rotary` as in `VidropSelfAttention`."""
        all_hidden_states = [] if output_hidden_states else None
        for layer in self.layer:
            if output_hidden_states:
                all_hidden_states.append(hidden_states)
            if self.gradient_checkpointing and self.training:
                hidden_states = self._gradient_checkpointing_func(layer.__call__, hidden_states, rotary)
            else:
                hidden_states = layer(hidden_states, rotary)
        if output_hidden_states:
            all_hidden_states.append(hidden_states)
        return hidden_states, tuple(all_hidden_states) if output_hidden_states else None


class VidropPreTrainedModel(PreTrainedModel):
    """Base class wiring ViDROP into the transformers model contract (init, loading, checkpointing)."""

    config_class = VidropConfig
    base_model_prefix = "vidrop"
    main_input_name = "pixel_values"
    supports_gradient_checkpointing = True
    _no_split_modules = ["VidropEmbeddings", "VidropLayer"]
    _supports_sdpa = True

    def _init_weights(self, module):
        """Truncated-normal linear and conv weights, zero biases, unit LayerNorms, and the ViDROP tokens."""
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv3d)):
            nn.init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, VidropEmbeddings):
            nn.init.trunc_normal_(module.mask_token, std=std)
            if module.cls_token is not None:
                nn.init.trunc_normal_(module.cls_token, std=std)
            if module.position_embeddings is not None:
                nn.init.trunc_normal_(module.position_embeddings, std=std)
            if module.position_projection is not None:  # growth sets it; fresh, the table fills the first channels
                module.position_projection.copy_(torch.eye(*module.position_projection.shape))


class VidropModel(VidropPreTrainedModel):
    """The ViDROP sparse video encoder.

    Called with `keep_indices` it embeds and encodes only those tokens (the cost falls with the drop rate);
    without, it is a dense video ViT. `mask` replaces kept tokens by the learned mask token (the student's
    view in self-distillation).
    """

    def __init__(self, config):
        super().__init__(config)
        self.embeddings = VidropEmbeddings(config)
        self.encoder = VidropEncoder(config)
        self.layernorm = (
            VidropLayerNorm(config.hidden_size, eps=config.layer_norm_eps) if config.use_final_layernorm else None
        )
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings.patch_embeddings

    def set_growth_masks(self, masks):
        """Fade a growth's new units in: `masks` maps submodule names (`"embeddings"`, `"encoder.layer.3"`,
        `"encoder.layer.3.norm1"`, `".attention"`, `".mlp"`, `"layernorm"`) to their `growth_mask`
        (`vidrop.expansion.fade_masks`); a module not named, or `masks=None`, computes as usual."""
        masks = masks or {}
        for name, module in self.named_modules():
            if hasattr(module, "growth_mask"):
                module.growth_mask = masks.get(name)

    def _rotary(self, pixel_values, keep_indices, dtype):
        """`(cos, sin)` `(B, 1, [1 +] K, D/h)` of `rope_3d` for the encoded tokens (the CLS token unturned)."""
        grid = self.embeddings.patch_embeddings.grid(pixel_values)
        angles = rope_3d_angles(keep_indices, grid, self.config.hidden_size // self.config.num_attention_heads)
        if self.config.use_cls_token:
            angles = F.pad(angles, (0, 0, 1, 0))  # (B, 1 + K, D/h), angle 0 for the CLS token
        angles = angles[:, None]  # (B, 1, L, D/h), broadcast over heads
        return angles.cos().to(dtype), angles.sin().to(dtype)

    def forward(
        self,
        pixel_values,
        keep_indices=None,
        mask=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        """Encode a batch of clips.

        Args:
            pixel_values (`torch.FloatTensor` of shape `(B, T, C, H, W)`): normalised clips; `T`, `H`, `W`
                multiples of the tubelet and patch sizes, any grid (position embeddings follow it).
            keep_indices (`torch.LongTensor` of shape `(B, K)`, *optional*): sorted grid indices of the kept
                tokens, the same `K` for every sample; `None` encodes all tokens.
            mask (`torch.BoolTensor` of shape `(B, K)`, *optional*): kept tokens replaced by the mask token.
            output_hidden_states (`bool`, *optional*): also return every block's input.
            return_dict (`bool`, *optional*): return a `VidropModelOutput` (default) or a tuple.

        Returns:
            `VidropModelOutput` with `last_hidden_state` `(B, 1 + K, D)`, `pooler_output` `(B, D)`,
            `keep_indices` `(B, K)`.
        """
        output_hidden_states = bool(output_hidden_states)
        return_dict = self.config.return_dict if return_dict is None else return_dict
        embeddings, keep_indices = self.embeddings(pixel_values, keep_indices, mask)
        rotary = None
        if self.config.position_embedding_type == "rope_3d":
            rotary = self._rotary(pixel_values, keep_indices, embeddings.dtype)
        hidden_states, all_hidden_states = self.encoder(embeddings, rotary, output_hidden_states)
        last_hidden_state = self.layernorm(hidden_states) if self.layernorm is not None else hidden_states
        if self.config.use_cls_token:
            pooler_output = last_hidden_state[:, 0]
        else:
            pooler_output = last_hidden_state.mean(dim=1)
        if not return_dict:
            outputs = (last_hidden_state, pooler_output, keep_indices)
            return outputs + ((all_hidden_states,) if output_hidden_states else ())
        return VidropModelOutput(
            last_hidden_state=last_hidden_state,
            pooler_output=pooler_output,
            keep_indices=keep_indices,
            hidden_states=all_hidden_states,
        )


class VidropForVideoClassification(VidropPreTrainedModel):
    """A `VidropModel` with a linear classifier on its pooled feature (CLS, or mean of tokens)."""

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.vidrop = VidropModel(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        pixel_values,
        labels=None,
        keep_indices=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        """Classify clips `pixel_values` `(B, T, C, H, W)`; `labels` `(B,)` int64 gives a cross-entropy loss.

        Returns:
            `ImageClassifierOutput` with `logits` `(B, num_labels)` and `loss` when `labels` are given.
        """
        return_dict = self.config.return_dict if return_dict is None else return_dict
        outputs = self.vidrop(
            pixel_values, keep_indices=keep_indices, output_hidden_states=output_hidden_states, return_dict=True
        )
        logits = self.classifier(outputs.pooler_output)  # (B, num_labels)
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        if not return_dict:
            output = (logits,) + ((outputs.hidden_states,) if output_hidden_states else ())
            return ((loss,) + output) if loss is not None else output
        return ImageClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)
