import json
import os

import pytest
import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForVideoClassification

from vidrop import VidropForVideoClassification, VidropModel
from vidrop.tokens import make_keep_indices, make_mask


def _model(config, seed=0):
    torch.manual_seed(seed)
    return VidropModel(config).eval()


@pytest.mark.parametrize("position_embedding_type", ["sincos_3d", "learned", "sincos_1d", "rope_3d"])
def test_dense_and_sparse_shapes(tiny_config, clip_batch, position_embedding_type):
    config = tiny_config(position_embedding_type=position_embedding_type)
    model = _model(config)
    clips = clip_batch(batch=3)
    dense = model(clips)
    assert dense.last_hidden_state.shape == (3, 1 + 2 * 4 * 4, 48)
    assert dense.pooler_output.shape == (3, 48)
    assert torch.equal(dense.keep_indices, torch.arange(32).expand(3, 32))
    keep = make_keep_indices((2, 4, 4), 3, 0.75, generator=torch.Generator().manual_seed(0))
    sparse = model(clips, keep_indices=keep, mask=make_mask(3, 8, 0.5, torch.Generator().manual_seed(1)))
    assert sparse.last_hidden_state.shape == (3, 1 + 8, 48)
    assert torch.equal(sparse.keep_indices, keep)
    assert torch.equal(sparse.pooler_output, sparse.last_hidden_state[:, 0])


def test_sparse_with_all_tokens_kept_equals_dense_exactly(tiny_config, clip_batch):
    model = _model(tiny_config())
    clips = clip_batch()
    keep = make_keep_indices((2, 4, 4), 2, 0.0, generator=torch.Generator().manual_seed(0))
    assert keep.shape == (2, 32)
    sparse = model(clips, keep_indices=keep, mask=torch.zeros(2, 32, dtype=torch.bool))
    assert torch.equal(sparse.last_hidden_state, model(clips).last_hidden_state)


def test_patch_embedding_equals_the_conv3d(tiny_config, clip_batch):
    model = _model(tiny_config())
    clips = clip_batch()
    projection = model.embeddings.patch_embeddings.projection
    conv = nn.functional.conv3d(clips.permute(0, 2, 1, 3, 4), projection.weight, projection.bias, stride=(2, 8, 8))
    expected = conv.flatten(2).transpose(1, 2)  # (B, N, D), index (t * H' + h) * W' + w
    keep = torch.arange(32).expand(2, 32)
    torch.testing.assert_close(model.embeddings.patch_embeddings(clips, keep), expected, rtol=1e-5, atol=1e-5)


def test_kept_tokens_depend_only_on_kept_pixels(tiny_config, clip_batch):
    model = _model(tiny_config())
    clips = clip_batch()
    keep = torch.tensor([[0, 5, 17, 30], [3, 4, 20, 21]])
    before = model(clips, keep_indices=keep).last_hidden_state
    changed = clips.clone()
    # token 1 of sample 0 is (t=0, h=0, w=1): frames 0-1, rows 0-7, columns 8-15; it is dropped
    changed[0, 0:2, :, 0:8, 8:16] += 10.0
    after = model(changed, keep_indices=keep).last_hidden_state
    assert torch.equal(before, after)
    # the negative control: a kept pixel changes the output (token 5 = (0, 1, 1): rows 8-15, columns 8-15)
    changed[0, 0:2, :, 8:16, 8:16] += 10.0
    assert not torch.allclose(before[0], model(changed, keep_indices=keep).last_hidden_state[0])


def test_masked_tokens_see_only_the_mask_token(tiny_config, clip_batch):
    model = _model(tiny_config())
    clips = clip_batch()
    keep = torch.tensor([[0, 5, 17, 30], [3, 4, 20, 21]])
    mask = torch.tensor([[False, True, False, False], [False, False, False, False]])
    before = model(clips, keep_indices=keep, mask=mask).last_hidden_state
    changed = clips.clone()
    changed[0, 0:2, :, 8:16, 8:16] += 10.0  # the pixels of masked token 5
    assert torch.equal(before, model(changed, keep_indices=keep, mask=mask).last_hidden_state)
    unmasked = model(clips, keep_indices=keep).last_hidden_state
    assert not torch.allclose(before[0], unmasked[0])
    assert torch.equal(before[1], unmasked[1])


@pytest.mark.parametrize("position_embedding_type", ["sincos_3d", "learned", "sincos_1d", "rope_3d"])
def test_other_grids_need_no_retraining(tiny_config, position_embedding_type):
    model = _model(tiny_config(position_embedding_type=position_embedding_type))
    for frames, size in [(2, 16), (8, 32), (4, 48), (6, 24)]:
        clips = torch.randn(2, frames, 3, size, size)
        out = model(clips)
        grid = (frames // 2) * (size // 8) ** 2
        assert out.last_hidden_state.shape == (2, 1 + grid, 48)
        assert torch.isfinite(out.last_hidden_state).all()


def test_learned_position_table_is_used_unchanged_at_the_config_grid(tiny_config):
    model = _model(tiny_config(position_embedding_type="learned"))
    table = model.embeddings.position_table((2, 4, 4), torch.device("cpu"))
    expected = model.embeddings.position_embeddings.flatten(2)[0].T
    assert torch.equal(table, expected)
    assert model.embeddings.position_table((4, 6, 6), torch.device("cpu")).shape == (144, 48)


def test_a_table_keeps_its_grid_when_the_clip_size_changes(tiny_config):
    """`position_embedding_grid` stays with the weights: continuing at another clip size resizes the same table."""
    config = tiny_config(position_embedding_type="sincos_1d")
    assert config.position_embedding_grid == [2, 4, 4]
    longer = type(config)(**{**config.to_dict(), "num_frames": 8, "image_size": 48})
    assert longer.position_embedding_grid == [2, 4, 4] and longer.token_grid == (4, 6, 6)
    table = _model(config).embeddings.position_table((2, 4, 4), torch.device("cpu"))
    assert torch.equal(_model(longer).embeddings.position_table((2, 4, 4), torch.device("cpu")), table)
    learned = _model(tiny_config(position_embedding_type="learned"))
    assert learned.embeddings.position_embeddings.shape == (1, 48, 2, 4, 4)
    again = VidropModel(type(config)(**{**learned.config.to_dict(), "num_frames": 8}))
    again.load_state_dict(learned.state_dict())  # same table shape at the new clip length


def test_rope_angles_follow_each_tokens_grid_position(tiny_config, clip_batch):
    """Channel layout of `rope_3d`: time, height, width in turn, each angle table repeated by halves (V-JEPA 2's
    layout, which the conversion tests check against the source), the remainder unturned."""
    from vidrop.models.modeling_vidrop import rope_3d_angles

    grid, head_dim = (4, 6, 6), 16  # 3 axes x 4 turned channels + 4 left as they are
    keep = torch.tensor([[0, (3 * 6 + 5) * 6 + 2]])  # tokens (0, 0, 0) and (3, 5, 2)
    angles = rope_3d_angles(keep, grid, head_dim)  # (1, 2, 16)
    omega = torch.tensor([1.0, 0.01])  # 10000^(-j / 2) for j = 0, 1
    expected = torch.cat([3 * omega, 3 * omega, 5 * omega, 5 * omega, 2 * omega, 2 * omega, torch.zeros(4)])
    torch.testing.assert_close(angles[0, 1], expected)
    assert torch.equal(angles[0, 0], torch.zeros(16))
    model = _model(tiny_config(position_embedding_type="rope_3d"))
    clips = clip_batch()
    keep_later = torch.arange(16, 32).expand(2, 16)  # the second time step only
    later = model(clips, keep_indices=keep_later).last_hidden_state
    earlier = model(clips.roll(-2, dims=1), keep_indices=keep_later - 16).last_hidden_state  # same pixels at t=0
    assert not torch.allclose(later, earlier)  # the same pixels at another time give other features


def test_sincos_table_is_distinct_per_token():
    from vidrop.models.modeling_vidrop import sincos_3d_position_embeddings

    table = sincos_3d_position_embeddings((4, 5, 6), 48)
    assert table.shape == (120, 48)
    assert torch.cdist(table, table).add(torch.eye(120) * 10).min() > 0.1
    # the t=0 slice is the same table for every frame count: small crops and other lengths line up
    assert torch.equal(sincos_3d_position_embeddings((2, 5, 6), 48), table[:60])


def test_bad_inputs_are_clear_errors(tiny_config, clip_batch):
    model = _model(tiny_config())
    clips = clip_batch()
    with pytest.raises(ValueError, match="allowed: 5 dimensions"):
        model(clips[0])
    with pytest.raises(ValueError, match="5 frames; allowed: a multiple of tubelet_size=2"):
        model(torch.randn(2, 5, 3, 32, 32))
    with pytest.raises(ValueError, match="30x32; allowed: multiples of patch_size=8"):
        model(torch.randn(2, 4, 3, 30, 32))
    with pytest.raises(ValueError, match="1 channels"):
        model(torch.randn(2, 4, 1, 32, 32))
    with pytest.raises(ValueError, match="keep_indices has shape"):
        model(clips, keep_indices=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="mask has shape"):
        model(clips, keep_indices=torch.zeros(2, 3, dtype=torch.long), mask=torch.zeros(2, 4, dtype=torch.bool))


def test_save_pretrained_round_trip_with_auto_classes(tiny_config, clip_batch, tmp_path):
    model = _model(tiny_config(position_embedding_type="learned"))
    model.save_pretrained(tmp_path)
    files = sorted(os.listdir(tmp_path))
    assert files == ["config.json", "model.safetensors"]
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "vidrop"
    assert type(AutoConfig.from_pretrained(tmp_path)).__name__ == "VidropConfig"
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, VidropModel)
    clips = clip_batch()
    keep = torch.tensor([[0, 5, 17, 30], [3, 4, 20, 21]])
    assert torch.equal(
        loaded(clips, keep_indices=keep).last_hidden_state, model(clips, keep_indices=keep).last_hidden_state
    )
    assert torch.equal(loaded(clips).pooler_output, model(clips).pooler_output)


def test_video_classification(tiny_config, clip_batch, tmp_path):
    config = tiny_config(num_labels=5)
    torch.manual_seed(0)
    model = VidropForVideoClassification(config)
    clips, labels = clip_batch(batch=4), torch.tensor([0, 1, 2, 4])
    out = model(clips, labels=labels)
    assert out.logits.shape == (4, 5)
    torch.testing.assert_close(out.loss, nn.functional.cross_entropy(out.logits, labels))
    out.loss.backward()
    assert model.vidrop.embeddings.patch_embeddings.projection.weight.grad.abs().sum() > 0
    model.save_pretrained(tmp_path)
    loaded = AutoModelForVideoClassification.from_pretrained(tmp_path)
    model.eval(), loaded.eval()
    assert torch.equal(loaded(clips).logits, model(clips).logits)
    # a classifier built on a pre-trained backbone folder reads its weights under the `vidrop.` prefix
    model.vidrop.save_pretrained(tmp_path / "backbone")
    from_backbone = AutoModelForVideoClassification.from_pretrained(tmp_path / "backbone", num_labels=5).eval()
    assert torch.equal(from_backbone.vidrop(clips).pooler_output, model.vidrop(clips).pooler_output)


@pytest.mark.parametrize("position_embedding_type", ["sincos_3d", "rope_3d"])
def test_gradient_checkpointing_gives_the_same_gradients(tiny_config, clip_batch, position_embedding_type):
    clips = clip_batch()
    grads = []
    for checkpointing in (False, True):
        model = _model(tiny_config(position_embedding_type=position_embedding_type)).train()
        if checkpointing:
            model.activation_checkpointing_enable()
            assert model.encoder.gradient_checkpointing
        model(clips).last_hidden_state.square().mean().backward()
        grads.append(model.encoder.layer[0].attention.qkv.weight.grad)
    torch.testing.assert_close(grads[0], grads[1])


def test_output_hidden_states_and_tuple_output(tiny_config, clip_batch):
    model = _model(tiny_config())
    out = model(clip_batch(), output_hidden_states=True)
    assert len(out.hidden_states) == 3
    as_tuple = model(clip_batch(), return_dict=False)
    assert torch.equal(as_tuple[0], out.last_hidden_state)


@pytest.mark.parametrize("position_embedding_type", ["sincos_3d", "rope_3d"])
def test_bf16_forward_runs_and_matches_fp32(tiny_config, clip_batch, position_embedding_type):
    model = _model(tiny_config(position_embedding_type=position_embedding_type))
    clips = clip_batch()
    reference = model(clips).last_hidden_state
    out = model.to(torch.bfloat16)(clips).last_hidden_state  # fp32 pixels are cast to the weights' dtype
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), reference, rtol=0.1, atol=0.1)


def test_drop_path_only_in_training(tiny_config, clip_batch):
    model = _model(tiny_config(drop_path_rate=0.5))
    clips = clip_batch()
    assert torch.equal(model(clips).last_hidden_state, model(clips).last_hidden_state)
    model.train()
    torch.manual_seed(1)
    first = model(clips).last_hidden_state
    torch.manual_seed(2)
    assert not torch.equal(first, model(clips).last_hidden_state)
