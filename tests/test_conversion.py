"""VideoMAE and V-JEPA 2 checkpoints converted into ViDROP compute the same encoder (random-weight sources built
from small `transformers` configs and saved as real folders; nothing is downloaded)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModel,
    VideoMAEConfig,
    VideoMAEForPreTraining,
    VideoMAEForVideoClassification,
    VideoMAEModel,
    VJEPA2Config,
    VJEPA2ForVideoClassification,
    VJEPA2Model,
)
from transformers.models.videomae.modeling_videomae import get_sinusoid_encoding_table

import vidrop  # noqa: F401  (registers the Auto classes)
from vidrop.conversion import convert
from vidrop.models.modeling_vidrop import sincos_1d_position_embeddings
from vidrop.tokens import make_keep_indices

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = dict(rtol=1e-5, atol=1e-5)

# Two shapes each: different widths, heads, tubelets, patches; with and without VideoMAE's final LayerNorm and
# biases; V-JEPA 2 head dims 16 (12 channels turned, 4 not) and 12 (all turned).
VIDEOMAE_CONFIGS = {
    "mean-pooling": dict(image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=48,
                         num_hidden_layers=2, num_attention_heads=3, intermediate_size=96, use_mean_pooling=True),
    "final-norm": dict(image_size=24, patch_size=4, num_frames=6, tubelet_size=3, hidden_size=32, num_hidden_layers=3,
                       num_attention_heads=4, intermediate_size=80, use_mean_pooling=False, qkv_bias=False,
                       hidden_act="gelu_new", layer_norm_eps=1e-6),
}
VJEPA2_CONFIGS = {
    "head-16": dict(crop_size=32, patch_size=8, frames_per_clip=4, tubelet_size=2, hidden_size=48,
                    num_hidden_layers=2, num_attention_heads=3, mlp_ratio=2.0),
    "head-12": dict(crop_size=24, patch_size=4, frames_per_clip=8, tubelet_size=2, hidden_size=48,
                    num_hidden_layers=3, num_attention_heads=4, mlp_ratio=3.0, qkv_bias=False),
}
SMALL_HEADS = dict(decoder_hidden_size=32, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
                   decoder_intermediate_size=64)
SMALL_PREDICTOR = dict(pred_hidden_size=24, pred_num_hidden_layers=1, pred_num_attention_heads=2, num_pooler_layers=1)


def _randomise(model, seed):
    """Non-trivial weights everywhere (biases and LayerNorms too, which the default init leaves at 0 and 1)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    return model.eval()


def _clips(frames, size, batch=2, seed=0):
    return torch.randn(batch, frames, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _source(model_class, config, folder, seed):
    """A random-weight source model saved in `folder` -> `(its encoder, folder)`."""
    model = _randomise(model_class(config), seed)
    model.save_pretrained(folder)
    return getattr(model, model.base_model_prefix, model), folder


def _videomae(name, tmp_path, model_class=VideoMAEModel):
    return _source(model_class, VideoMAEConfig(**VIDEOMAE_CONFIGS[name], **SMALL_HEADS), tmp_path / name, seed=1)


def _vjepa2(name, tmp_path, model_class=VJEPA2Model):
    return _source(model_class, VJEPA2Config(**VJEPA2_CONFIGS[name], **SMALL_PREDICTOR), tmp_path / name, seed=2)


def _vjepa2_context_encoder(model, clips, keep_indices):
    """The V-JEPA 2 encoder on context tokens: embed, keep `keep_indices`, then the source's own blocks with those
    positions (`position_mask`) and its final norm, as V-JEPA 2 encodes a context."""
    from transformers.models.vjepa2.modeling_vjepa2 import apply_masks

    encoder = model.encoder
    hidden = apply_masks(encoder.embeddings(clips), [keep_indices])  # (B, K, D)
    for layer in encoder.layer:
        hidden = layer(hidden, position_mask=keep_indices)[0]
    return encoder.layernorm(hidden)


@pytest.mark.parametrize("name", list(VIDEOMAE_CONFIGS))
def test_videomae_dense_and_with_dropped_tokens(name, tmp_path):
    source, folder = _videomae(name, tmp_path, VideoMAEForPreTraining)
    model, report = convert(folder, "videomae", use_cls_token=False)
    config = VIDEOMAE_CONFIGS[name]
    clips = _clips(config["num_frames"], config["image_size"])
    grid = (config["num_frames"] // config["tubelet_size"], *(2 * [config["image_size"] // config["patch_size"]]))
    with torch.no_grad():
        torch.testing.assert_close(model(clips).last_hidden_state, source(clips).last_hidden_state, **TOLERANCE)
        keep = make_keep_indices(grid, 2, 0.75, pattern="tube", generator=torch.Generator().manual_seed(0))
        dropped = torch.ones(2, keep.new_tensor(grid).prod().item(), dtype=torch.bool).scatter(1, keep, False)
        expected = source(clips, bool_masked_pos=dropped).last_hidden_state  # VideoMAE encodes the visible ones
        torch.testing.assert_close(model(clips, keep_indices=keep).last_hidden_state, expected, **TOLERANCE)
    assert model.config.position_embedding_type == "sincos_1d"
    assert model.config.use_final_layernorm is not config["use_mean_pooling"]
    assert report.unused and all(n.startswith(("decoder.", "encoder_to_decoder.", "mask_token")) for n in report.unused)


@pytest.mark.parametrize("name", list(VJEPA2_CONFIGS))
def test_vjepa2_dense_and_with_context_masks(name, tmp_path):
    source, folder = _vjepa2(name, tmp_path)
    model, report = convert(folder, "vjepa2", use_cls_token=False)
    config = VJEPA2_CONFIGS[name]
    clips = _clips(config["frames_per_clip"], config["crop_size"])
    grid = (config["frames_per_clip"] // config["tubelet_size"], *(2 * [config["crop_size"] // config["patch_size"]]))
    with torch.no_grad():
        expected = source(clips, skip_predictor=True).last_hidden_state
        torch.testing.assert_close(model(clips).last_hidden_state, expected, **TOLERANCE)
        for pattern in ("random", "block"):
            keep = make_keep_indices(grid, 2, 0.6, pattern=pattern, generator=torch.Generator().manual_seed(1))
            torch.testing.assert_close(model(clips, keep_indices=keep).last_hidden_state,
                                       _vjepa2_context_encoder(source, clips, keep), **TOLERANCE)
    assert model.config.position_embedding_type == "rope_3d"
    assert report.unused and all(n.startswith("predictor.") for n in report.unused)


def test_the_equivalence_checks_can_fail(tmp_path):
    """Negative controls: the same weights with the other models' position scheme are far outside tolerance."""
    videomae, videomae_folder = _videomae("mean-pooling", tmp_path)
    vjepa2, vjepa2_folder = _vjepa2("head-16", tmp_path)
    clips = _clips(4, 32)
    for source, folder, other in ((videomae, videomae_folder, "sincos_3d"), (vjepa2, vjepa2_folder, "sincos_1d")):
        model, _ = convert(folder, use_cls_token=False)
        model.config.position_embedding_type = other
        with torch.no_grad():
            got = model(clips).last_hidden_state
            expected = (source(clips, skip_predictor=True) if source is vjepa2 else source(clips)).last_hidden_state
        assert not torch.allclose(got, expected, **TOLERANCE)


def test_the_sincos_1d_table_is_videomaes():
    torch.testing.assert_close(sincos_1d_position_embeddings(32, 48), get_sinusoid_encoding_table(32, 48)[0],
                               rtol=0, atol=0)


def test_a_cls_token_is_added_by_default_and_reported(tmp_path):
    _, folder = _vjepa2("head-16", tmp_path, VJEPA2ForVideoClassification)
    model, report = convert(folder)  # the source kind read from the folder
    assert model.config.use_cls_token and model.config.cls_loss_weight == 1.0
    assert report.initialised == ["embeddings.cls_token", "embeddings.mask_token"]
    assert {n.split(".")[0] for n in report.unused} == {"classifier", "pooler", "predictor"}
    out = model(_clips(4, 32))
    assert out.last_hidden_state.shape == (2, 1 + 2 * 4 * 4, 48)
    _, folder = _videomae("mean-pooling", tmp_path, VideoMAEForVideoClassification)
    _, report = convert(folder, "videomae")
    assert sorted(report.unused) == ["classifier.bias", "classifier.weight", "fc_norm.bias", "fc_norm.weight"]


def test_a_folder_of_another_kind_is_a_clear_error(tmp_path, tiny_config):
    _, videomae_folder = _videomae("mean-pooling", tmp_path)
    with pytest.raises(ValueError, match=r"holds a 'videomae' model; allowed: vjepa2"):
        convert(videomae_folder, "vjepa2")
    vidrop.VidropModel(tiny_config()).save_pretrained(tmp_path / "vidrop")
    with pytest.raises(ValueError, match=r"holds a 'vidrop' model; allowed: videomae, vjepa2"):
        convert(tmp_path / "vidrop")
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match=r"model of type 'bert'; allowed: 'vidrop' or a source to convert"):
        convert(tmp_path / "bert")
    with pytest.raises(ValueError, match="has no config.json"):
        convert(tmp_path)
    from safetensors.torch import load_file, save_file

    weights = load_file(videomae_folder / "model.safetensors")
    del weights["encoder.layer.1.output.dense.weight"]
    save_file(weights, videomae_folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"has no weight 'encoder.layer.1.output.dense.weight'; allowed: a complete"):
        convert(videomae_folder)
    (videomae_folder / "model.safetensors").unlink()
    with pytest.raises(ValueError, match="has no weights; allowed: a folder with one of model.safetensors"):
        convert(videomae_folder)


def test_the_launcher_writes_a_folder_that_auto_model_loads(tmp_path):
    source, folder = _vjepa2("head-12", tmp_path)
    output = tmp_path / "converted"
    subprocess.run([sys.executable, str(ROOT / "launchers" / "convert.py"), "--from_pretrained", str(folder),
                    "--source", "vjepa2", "--output_dir", str(output), "--no_cls_token"], check=True,
                   capture_output=True)
    report = json.loads((output / "conversion.json").read_text())
    assert report["source"] == "vjepa2" and report["initialised"] == ["embeddings.mask_token"]
    model = AutoModel.from_pretrained(output)
    clips = _clips(8, 24)
    with torch.no_grad():
        torch.testing.assert_close(model(clips).last_hidden_state,
                                   source(clips, skip_predictor=True).last_hidden_state, **TOLERANCE)
