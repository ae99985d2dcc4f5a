import pytest

from vidrop import PRESETS, VidropConfig
from vidrop.tokens import DROP_PATTERNS, MASK_PATTERNS


def test_presets_have_vit_dimensions():
    expected = {
        "tiny": (192, 12, 3),
        "small": (384, 12, 6),
        "base": (768, 12, 12),
        "large": (1024, 24, 16),
        "huge": (1280, 32, 16),
    }
    for name, (width, depth, heads) in expected.items():
        config = VidropConfig.from_preset(name)
        assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (width, depth, heads)
        assert config.intermediate_size == 4 * width
    assert set(PRESETS) == set(expected)


def test_preset_overrides_and_unknown_preset():
    config = VidropConfig.from_preset("small", num_frames=8, drop_rate=0.9)
    assert (config.hidden_size, config.num_frames, config.drop_rate) == (384, 8, 0.9)
    with pytest.raises(ValueError, match="preset='gigantic'.*'tiny'"):
        VidropConfig.from_preset("gigantic")


def test_defaults_are_the_paper_defaults():
    config = VidropConfig()
    assert config.model_type == "vidrop"
    assert config.drop_pattern == "random"
    assert config.loss_type == "dino_ibot"
    assert config.position_embedding_type == "sincos_3d"
    assert config.token_grid == (8, 14, 14)
    assert config.teacher_sees_dropped_tokens is False


def test_dict_round_trip_keeps_every_field():
    config = VidropConfig.from_preset("tiny", drop_pattern="tube", mask_ratio=0.3, centering="sinkhorn_knopp")
    again = VidropConfig.from_dict(config.to_dict())
    assert again.to_dict() == config.to_dict()


def test_configurations_are_equal_exactly_when_their_fields_are(tmp_path):
    config = VidropConfig.from_preset("tiny", drop_rate=0.5)
    config.save_pretrained(tmp_path)
    assert VidropConfig.from_pretrained(tmp_path) == config
    assert VidropConfig.from_preset("tiny", drop_rate=0.5) == config
    assert VidropConfig.from_preset("base", drop_rate=0.5) != config  # an architecture field
    assert VidropConfig.from_preset("tiny", drop_rate=0.75) != config  # an SSL field
    assert config != config.to_dict()


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("drop_rate", 1.0, r"drop_rate=1.0 is out of range; allowed: \[0.0, 1.0\)"),
        ("drop_rate", -0.1, r"drop_rate=-0.1 is out of range"),
        ("mask_ratio", 1.5, r"mask_ratio=1.5 is out of range; allowed: \[0.0, 1.0\]"),
        ("mask_ratio", -0.5, r"mask_ratio=-0.5"),
        ("hidden_size", 100, r"hidden_size=100 is not divisible by num_attention_heads=12"),
        ("image_size", 225, r"image_size=225 is not divisible by patch_size=16"),
        ("small_crop_size", 90, r"small_crop_size=90 is not divisible by patch_size=16"),
        ("small_crop_size", 256, r"small_crop_size=256 is larger than image_size=224"),
        ("num_frames", 15, r"num_frames=15 is not divisible by tubelet_size=2"),
        ("drop_pattern", "checkerboard", r"drop_pattern='checkerboard' is not supported; allowed: 'random'"),
        ("mask_pattern", "past", r"mask_pattern='past' is not supported; allowed: 'random', 'future'"),
        ("loss_type", "l2", r"loss_type='l2' is not supported; allowed: 'dino_ibot', 'mse'"),
        ("centering", "mean", r"centering='mean' is not supported; allowed: 'center', 'sinkhorn_knopp', 'none'"),
        ("position_embedding_type", "rope", r"position_embedding_type='rope' is not supported"),
        ("hidden_act", "tanhh", r"hidden_act='tanhh' is not supported"),
        ("num_hidden_layers", 0, r"num_hidden_layers=0 is not allowed; it must be a positive integer"),
        ("num_small_crops", -1, r"num_small_crops=-1 is not allowed"),
        ("teacher_temperature", 0.0, r"teacher_temperature=0.0 is out of range"),
        ("center_momentum", 1.0, r"center_momentum=1.0 is out of range"),
        ("drop_path_rate", 1.0, r"drop_path_rate=1.0 is out of range"),
    ],
)
def test_validation_names_field_value_and_allowed(field, value, message):
    with pytest.raises(ValueError, match=message):
        VidropConfig(**{field: value})


def test_cls_loss_needs_cls_token():
    with pytest.raises(ValueError, match="use_cls_token=False with cls_loss_weight=1.0"):
        VidropConfig(use_cls_token=False)
    assert VidropConfig(use_cls_token=False, cls_loss_weight=0.0).use_cls_token is False


def test_config_patterns_are_the_token_plan_patterns():
    from vidrop.models.configuration_vidrop import DROP_PATTERNS as CONFIG_PATTERNS
    from vidrop.models.configuration_vidrop import MASK_PATTERNS as CONFIG_MASK_PATTERNS

    assert CONFIG_PATTERNS == DROP_PATTERNS
    assert CONFIG_MASK_PATTERNS == MASK_PATTERNS


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(layer_norm_eps=0.0), r"layer_norm_eps=0.0 is out of range; allowed: \(0.0, 1.0\]"),
        (dict(initializer_range=-0.02), r"initializer_range=-0.02 is out of range"),
        (dict(cls_loss_weight=-1.0), r"cls_loss_weight=-1.0 is out of range; allowed: \[0.0, inf\]"),
        (dict(koleo_loss_weight=-0.1), r"koleo_loss_weight=-0.1 is out of range; allowed: \[0.0, inf\]"),
        (dict(mean_entropy_weight=-1.0), r"mean_entropy_weight=-1.0 is out of range; allowed: \[0.0, inf\]"),
        (dict(mean_entropy_weight=1.0, loss_type="mse"),
         r"mean_entropy_weight=1.0 with loss_type='mse'; allowed: loss_type='dino_ibot' or mean_entropy_weight=0"),
        (dict(student_temperature=0.0), r"student_temperature=0.0 is out of range"),
        (dict(hidden_size=4, num_attention_heads=1), r"hidden_size=4 is too small for sincos_3d; allowed: >= 6"),
        (dict(hidden_size=20, num_attention_heads=4, position_embedding_type="rope_3d"),
         r"hidden_size / num_attention_heads = 5 is too small for rope_3d; allowed: >= 6"),
        (dict(position_embedding_grid=[8, 14]), r"position_embedding_grid=\[8, 14\] is not allowed; it must be 3"),
        (dict(num_prototypes=0), r"num_prototypes=0 is not allowed; it must be a positive integer"),
        (dict(patch_size=16.0), r"patch_size=16.0 is not allowed; it must be a positive integer"),
    ],
)
def test_more_validation_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VidropConfig(**kwargs)


def test_modeling_files_import_only_torch_transformers_and_each_other():
    """The model folder must be exportable as Hub remote code (loaded where `vidrop` is not installed)."""
    import ast
    from pathlib import Path

    import vidrop.models

    for path in Path(vidrop.models.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = {"." if node.level else node.module.split(".")[0]}
            else:
                continue
            assert roots <= {"torch", "transformers", ".", "math", "dataclasses"}, (path.name, roots)
