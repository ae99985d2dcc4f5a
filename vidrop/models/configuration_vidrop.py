"""Configuration of the ViDROP sparse video encoder and its self-distillation toggles."""

from transformers import PretrainedConfig

DROP_PATTERNS = ("random", "tube", "block", "spatial_uniform", "temporal_uniform", "stratified")
MASK_PATTERNS = ("random", "future")
LOSS_TYPES = ("dino_ibot", "mse", "cosine", "smooth_l1")
CENTERINGS = ("center", "sinkhorn_knopp", "none")
POSITION_EMBEDDING_TYPES = ("sincos_3d", "learned", "sincos_1d", "rope_3d")
# Fields that decide a checkpoint's weights or what they compute: a model started from a checkpoint keeps them.
ARCHITECTURE_FIELDS = (
    "tubelet_size", "patch_size", "num_channels", "hidden_size", "num_hidden_layers", "num_attention_heads",
    "intermediate_size", "hidden_act", "layer_norm_eps", "qkv_bias", "use_cls_token", "position_embedding_type",
    "position_embedding_grid", "position_embedding_dim", "use_final_layernorm",
)
HIDDEN_ACTS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "quick_gelu", "relu", "silu")

# ViT-T/S/B/L/H backbone dimensions (Dosovitskiy et al.; ViT-H with 16 heads of 80).
PRESETS = {
    "tiny": dict(hidden_size=192, num_hidden_layers=12, num_attention_heads=3, intermediate_size=768),
    "small": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
    "huge": dict(hidden_size=1280, num_hidden_layers=32, num_attention_heads=16, intermediate_size=5120),
}


def _check_choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported; allowed: {', '.join(map(repr, allowed))}")


def _check_range(name, value, low, high, low_open=False, high_open=False):
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name}={value!r} is out of range; allowed: {interval}")


def _check_positive_int(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}={value!r} is not allowed; it must be a positive integer")


class VidropConfig(PretrainedConfig):
    r"""Configuration of a ViDROP video ViT and of the self-distillation objective that trains it.

    The architecture fields follow the transformers ViT / VideoMAE names, so the backbone is a standard
    pre-LayerNorm ViT over tubelet tokens. The SSL fields are the ablation axes of ViDROP; they are read by
    the token-plan collator (`vidrop.data.collate`) and the objective (`vidrop.ssl`), never by the encoder.

    Args:
        image_size (`int`, defaults to 224): height and width of a global view, in pixels.
        num_frames (`int`, defaults to 16): frames per clip.
        frame_stride (`int`, defaults to 2): video frames between consecutive frames of a clip, the sampling the
            model is trained at; evaluation samples its clips the same way unless told otherwise.
        tubelet_size (`int`, defaults to 2): frames per tubelet token.
        patch_size (`int`, defaults to 16): height and width of a tubelet token, in pixels.
        num_channels (`int`, defaults to 3): colour channels.
        hidden_size (`int`, defaults to 768): width D of the residual stream.
        num_hidden_layers (`int`, defaults to 12): transformer blocks.
        num_attention_heads (`int`, defaults to 12): attention heads per block; must divide `hidden_size`.
        intermediate_size (`int`, defaults to 3072): hidden width of each block's MLP.
        hidden_act (`str`, defaults to `"gelu"`): MLP activation, one of `HIDDEN_ACTS`.
        layer_norm_eps (`float`, defaults to 1e-6): LayerNorm epsilon.
        qkv_bias (`bool`, defaults to True): bias on the query/key/value projection.
        drop_path_rate (`float`, defaults to 0.0): stochastic depth rate of the last block (linear in depth).
        initializer_range (`float`, defaults to 0.02): std of the truncated normal weight initialisation.
        use_cls_token (`bool`, defaults to True): prepend a learned CLS token (the CLS loss needs it).
        position_embedding_type (`str`, defaults to `"sincos_3d"`): `"sincos_3d"` (fixed, separable
            sine-cosine over time, height and width, computed for any token grid), `"learned"` (a table at
            the config grid, trilinearly resized for other grids), `"sincos_1d"` (VideoMAE's fixed sine-cosine
            table over the flattened config grid, trilinearly resized for other grids) or `"rope_3d"` (V-JEPA 2's
            rotary embedding of the queries and keys by each token's time, height and width on the grid; no
            additive table; the CLS token is not rotated).
        position_embedding_grid (`list[int]`, defaults to the token grid of `num_frames` and `image_size`): the
            `(T', H', W')` grid on which the `"learned"` or `"sincos_1d"` table is defined (other grids resize it);
            it stays with the weights when a checkpoint is continued at another clip size.
        position_embedding_dim (`int`, defaults to `hidden_size`): width at which a `"sincos_3d"` or `"sincos_1d"`
            table is computed; a model grown wider (`vidrop.expansion`) keeps its table's width and maps it into
            the residual stream with a fixed `position_projection` `(hidden_size, position_embedding_dim)`.
        use_final_layernorm (`bool`, defaults to True): LayerNorm on the encoder output (VideoMAE checkpoints
            with `use_mean_pooling=True` have none).
        drop_pattern (`str`, defaults to `"random"`): how kept tokens are chosen, one of `DROP_PATTERNS`.
        drop_rate (`float`, defaults to 0.75): fraction of tokens dropped before the encoder, in [0, 1).
        mask_ratio (`float`, defaults to 0.5): fraction of kept tokens the student sees as the mask token.
        mask_pattern (`str`, defaults to `"random"`): which kept tokens are masked, one of `MASK_PATTERNS`:
            `"random"` (any), `"future"` (the latest by time step, so the student predicts the later tubelets from
            the earlier ones).
        loss_type (`str`, defaults to `"dino_ibot"`): `"dino_ibot"` (DINO CLS + iBOT per-patch cross-entropy
            over prototypes) or a feature regression of the teacher's outputs: `"mse"`, `"cosine"`,
            `"smooth_l1"`.
        num_small_crops (`int`, defaults to 2): small crops per clip, seen by the student only.
        small_crop_size (`int`, defaults to 96): height and width of a small crop, in pixels.
        head_hidden_size (`int`, defaults to 2048): hidden width of the projection heads' MLP.
        head_bottleneck_size (`int`, defaults to 256): bottleneck width before the prototypes.
        num_prototypes (`int`, defaults to 8192): prototypes of the CLS (DINO) head.
        num_patch_prototypes (`int`, defaults to 8192): prototypes of the per-patch (iBOT) head.
        student_temperature (`float`, defaults to 0.1): softmax temperature of the student.
        teacher_temperature (`float`, defaults to 0.07): softmax temperature of the teacher (its warm-up
            schedule belongs to the training arguments).
        centering (`str`, defaults to `"center"`): teacher centering, `"center"` (EMA of the teacher's mean
            logits), `"sinkhorn_knopp"` or `"none"` (sharpening only, as MSN; pair it with
            `mean_entropy_weight`).
        center_momentum (`float`, defaults to 0.9): momentum of the `"center"` EMA, in [0, 1).
        sinkhorn_iterations (`int`, defaults to 3): iterations of Sinkhorn-Knopp centering.
        cls_loss_weight (`float`, defaults to 1.0): weight of the CLS loss in the total.
        patch_loss_weight (`float`, defaults to 1.0): weight of the per-patch loss in the total.
        koleo_loss_weight (`float`, defaults to 0.0): weight of the KoLeo regulariser (DINOv2) that spreads
            the student's CLS features of each global view over the batch; 0 turns it off.
        mean_entropy_weight (`float`, defaults to 0.0): weight of MSN's mean-entropy maximisation: the entropy of
            the student's mean prototype prediction over one rank's batch is subtracted from the loss, for the CLS
            and the per-patch head alike (`loss_type="dino_ibot"` only); 0 turns it off.
        teacher_sees_dropped_tokens (`bool`, defaults to False): False, the teacher encodes the same kept
            tokens as the student; True, it encodes all tokens and its outputs are read at the kept ones.
    """

    model_type = "vidrop"

    def __init__(
        self,
        image_size=224,
        num_frames=16,
        frame_stride=2,
        tubelet_size=2,
        patch_size=16,
        num_channels=3,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        hidden_act="gelu",
        layer_norm_eps=1e-6,
        qkv_bias=True,
        drop_path_rate=0.0,
        initializer_range=0.02,
        use_cls_token=True,
        position_embedding_type="sincos_3d",
        position_embedding_grid=None,
        position_embedding_dim=None,
        use_final_layernorm=True,
        drop_pattern="random",
        drop_rate=0.75,
        mask_ratio=0.5,
        mask_pattern="random",
        loss_type="dino_ibot",
        num_small_crops=2,
        small_crop_size=96,
        head_hidden_size=2048,
        head_bottleneck_size=256,
        num_prototypes=8192,
        num_patch_prototypes=8192,
        student_temperature=0.1,
        teacher_temperature=0.07,
        centering="center",
        center_momentum=0.9,
        sinkhorn_iterations=3,
        cls_loss_weight=1.0,
        patch_loss_weight=1.0,
        koleo_loss_weight=0.0,
        mean_entropy_weight=0.0,
        teacher_sees_dropped_tokens=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.image_size = image_size
        self.num_frames = num_frames
        self.frame_stride = frame_stride
        self.tubelet_size = tubelet_size
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.layer_norm_eps = layer_norm_eps
        self.qkv_bias = qkv_bias
        self.drop_path_rate = drop_path_rate
        self.initializer_range = initializer_range
        self.use_cls_token = use_cls_token
        self.position_embedding_type = position_embedding_type
        self.position_embedding_grid = None if position_embedding_grid is None else list(position_embedding_grid)
        self.position_embedding_dim = position_embedding_dim if position_embedding_dim is not None else hidden_size
        self.use_final_layernorm = use_final_layernorm
        self.drop_pattern = drop_pattern
        self.drop_rate = drop_rate
        self.mask_ratio = mask_ratio
        self.mask_pattern = mask_pattern
        self.loss_type = loss_type
        self.num_small_crops = num_small_crops
        self.small_crop_size = small_crop_size
        self.head_hidden_size = head_hidden_size
        self.head_bottleneck_size = head_bottleneck_size
        self.num_prototypes = num_prototypes
        self.num_patch_prototypes = num_patch_prototypes
        self.student_temperature = student_temperature
        self.teacher_temperature = teacher_temperature
        self.centering = centering
        self.center_momentum = center_momentum
        self.sinkhorn_iterations = sinkhorn_iterations
        self.cls_loss_weight = cls_loss_weight
        self.patch_loss_weight = patch_loss_weight
        self.koleo_loss_weight = koleo_loss_weight
        self.mean_entropy_weight = mean_entropy_weight
        self.teacher_sees_dropped_tokens = teacher_sees_dropped_tokens
        self.validate_vidrop()
        if self.position_embedding_grid is None:
            self.position_embedding_grid = list(self.token_grid)

    def __eq__(self, other):
        """Equal when every field of `config.json` is. (transformers turns each configuration class into a
        dataclass whose generated `__eq__` compares the declared fields; ViDROP's are set in `__init__`, so that
        one would compare only the base class's and call a ViT-T equal to a ViT-B.)"""
        return isinstance(other, VidropConfig) and self.to_dict() == other.to_dict()

    @property
    def token_grid(self):
        """`(T', H', W')`: the tubelet grid of a global view."""
        return (
            self.num_frames // self.tubelet_size,
            self.image_size // self.patch_size,
            self.image_size // self.patch_size,
        )

    def validate_vidrop(self):
        """Raise `ValueError` naming the field, its value and what is allowed, for any inconsistent field."""
        for name in (
            "image_size", "num_frames", "frame_stride", "tubelet_size", "patch_size", "num_channels", "hidden_size",
            "num_hidden_layers", "num_attention_heads", "intermediate_size", "small_crop_size",
            "head_hidden_size", "head_bottleneck_size", "num_prototypes", "num_patch_prototypes",
            "sinkhorn_iterations",
        ):
            _check_positive_int(name, getattr(self, name))
        if not isinstance(self.num_small_crops, int) or self.num_small_crops < 0:
            raise ValueError(f"num_small_crops={self.num_small_crops!r} is not allowed; it must be an integer >= 0")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size={self.hidden_size} is not divisible by num_attention_heads="
                f"{self.num_attention_heads}; allowed: a multiple of num_attention_heads"
            )
        for name, size in (("image_size", self.image_size), ("small_crop_size", self.small_crop_size)):
            if size % self.patch_size:
                raise ValueError(
                    f"{name}={size} is not divisible by patch_size={self.patch_size}; "
                    "allowed: a multiple of patch_size"
                )
        if self.small_crop_size > self.image_size:
            raise ValueError(
                f"small_crop_size={self.small_crop_size} is larger than image_size={self.image_size}; "
                "allowed: at most image_size"
            )
        if self.num_frames % self.tubelet_size:
            raise ValueError(
                f"num_frames={self.num_frames} is not divisible by tubelet_size={self.tubelet_size}; "
                "allowed: a multiple of tubelet_size"
            )
        _check_positive_int("position_embedding_dim", self.position_embedding_dim)
        if self.position_embedding_type == "sincos_3d" and self.position_embedding_dim < 6:
            name = "hidden_size" if self.position_embedding_dim == self.hidden_size else "position_embedding_dim"
            raise ValueError(f"{name}={self.position_embedding_dim} is too small for sincos_3d; allowed: >= 6")
        head_dim = self.hidden_size // self.num_attention_heads
        if self.position_embedding_type == "rope_3d" and head_dim < 6:
            raise ValueError(
                f"hidden_size / num_attention_heads = {head_dim} is too small for rope_3d; allowed: >= 6 "
                "(two rotated channels per axis)"
            )
        if self.position_embedding_grid is not None:
            if len(self.position_embedding_grid) != 3:
                raise ValueError(
                    f"position_embedding_grid={self.position_embedding_grid!r} is not allowed; "
                    "it must be 3 positive integers (T', H', W')"
                )
            for size in self.position_embedding_grid:
                _check_positive_int("position_embedding_grid", size)
        _check_choice("hidden_act", self.hidden_act, HIDDEN_ACTS)
        _check_choice("position_embedding_type", self.position_embedding_type, POSITION_EMBEDDING_TYPES)
        _check_choice("drop_pattern", self.drop_pattern, DROP_PATTERNS)
        _check_choice("mask_pattern", self.mask_pattern, MASK_PATTERNS)
        _check_choice("loss_type", self.loss_type, LOSS_TYPES)
        _check_choice("centering", self.centering, CENTERINGS)
        _check_range("drop_rate", self.drop_rate, 0.0, 1.0, high_open=True)
        _check_range("mask_ratio", self.mask_ratio, 0.0, 1.0)
        _check_range("drop_path_rate", self.drop_path_rate, 0.0, 1.0, high_open=True)
        _check_range("center_momentum", self.center_momentum, 0.0, 1.0, high_open=True)
        _check_range("layer_norm_eps", self.layer_norm_eps, 0.0, 1.0, low_open=True)
        _check_range("initializer_range", self.initializer_range, 0.0, 1.0, low_open=True)
        for name in ("student_temperature", "teacher_temperature"):
            _check_range(name, getattr(self, name), 0.0, 10.0, low_open=True)
        for name in ("cls_loss_weight", "patch_loss_weight", "koleo_loss_weight", "mean_entropy_weight"):
            _check_range(name, getattr(self, name), 0.0, float("inf"))
        if self.mean_entropy_weight > 0 and self.loss_type != "dino_ibot":
            raise ValueError(
                f"mean_entropy_weight={self.mean_entropy_weight} with loss_type={self.loss_type!r}; allowed: "
                "loss_type='dino_ibot' or mean_entropy_weight=0 (it spreads prototype predictions)"
            )
        if self.cls_loss_weight > 0 and not self.use_cls_token:
            raise ValueError(
                f"use_cls_token=False with cls_loss_weight={self.cls_loss_weight}; allowed: use_cls_token=True "
                "or cls_loss_weight=0 (the CLS loss reads the CLS token)"
            )

    @classmethod
    def from_preset(cls, name, **kwargs):
        """Build the configuration of a named ViT size, `tiny` | `small` | `base` | `large` | `huge`.

        Keyword arguments override the preset (for example `num_frames=8` or `drop_rate=0.9`).
        """
        if name not in PRESETS:
            raise ValueError(f"preset={name!r} is not known; allowed: {', '.join(map(repr, PRESETS))}")
        return cls(**{**PRESETS[name], **kwargs})
