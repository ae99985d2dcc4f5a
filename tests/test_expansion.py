"""Function-preserving growth: each operator alone and chained, the SSL loss, the negative controls, symmetry
breaking, Adam's moments, the teacher's draws, errors and the launcher; growth by masks and its fade."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vidrop import VidropConfig, VidropModel
from vidrop.expansion import Grown, fade_masks, grow, grow_adam_state, grow_masked, grow_model
from vidrop.models import PRESETS
from vidrop.ssl import SelfDistillation

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = dict(rtol=1e-5, atol=1e-5)
TARGETS = {
    "depth": dict(num_hidden_layers=5),
    "mlp": dict(intermediate_size=200),
    "width-x2": dict(hidden_size=96),  # 6 heads of 16: channels tiled
    "width-4/3": dict(hidden_size=64, num_attention_heads=4),  # orthogonal map, LayerNorms folded
    "head-dim": dict(hidden_size=96, num_attention_heads=3),  # 3 heads of 32
    "head-dim-5/4": dict(hidden_size=60, num_attention_heads=3),  # 3 heads of 20: some channels cloned, some not
    "all": dict(hidden_size=80, num_attention_heads=5, intermediate_size=150, num_hidden_layers=3),
    "all-x2": dict(hidden_size=96, intermediate_size=150, num_hidden_layers=3),
}


def _perturbed(model, seed=0):
    """Non-trivial weights everywhere (LayerNorms and biases too), in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    return model.eval()


def _clips(size=32, seed=1):
    return torch.randn(2, 4, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _assert_preserved(small, grown, big, **tolerance):
    """Per-token features (global and small-crop grids, dense and sparse) and pooled outputs, mapped back."""
    keep = torch.tensor([[0, 2, 5, 7, 11, 30], [1, 3, 4, 8, 20, 31]])
    for clips, kwargs in ((_clips(), {}), (_clips(16, 2), {}), (_clips(), {"keep_indices": keep})):
        expected, got = small(clips, **kwargs), big(clips, **kwargs)
        torch.testing.assert_close(grown.features_back(got.last_hidden_state), expected.last_hidden_state,
                                   **(tolerance or TOLERANCE))
        torch.testing.assert_close(grown.features_back(got.pooler_output), expected.pooler_output,
                                   **(tolerance or TOLERANCE))


def _grown_model(grown):
    big = VidropModel(grown.config).eval()
    big.load_state_dict(grown.state)  # strict: every weight and buffer accounted for
    return big


@pytest.mark.parametrize("method", ["copies", "masks"])
@pytest.mark.parametrize("position_embedding_type", ["sincos_3d", "learned", "sincos_1d", "rope_3d"])
@pytest.mark.parametrize("target", list(TARGETS))
def test_each_operator_preserves_the_function(tiny_config, target, position_embedding_type, method):
    config = tiny_config(position_embedding_type=position_embedding_type)
    small = _perturbed(VidropModel(config))
    if position_embedding_type == "rope_3d" and target.startswith("head-dim"):
        with pytest.raises(ValueError, match="rope_3d turns 16-channel heads"):
            if method == "copies":
                grow_model(config, small.state_dict(), TARGETS[target])
            else:
                _grown_by_masks(config, small, TARGETS[target])
        return
    if method == "masks":
        _assert_masked_growth_preserves_until_faded_in(config, small, TARGETS[target])
        return
    for noise in (0.0, 0.1):  # noise breaks symmetry without changing the forward pass
        grown = grow_model(config, small.state_dict(), TARGETS[target], noise=noise, seed=3)
        _assert_preserved(small, grown, _grown_model(grown))


def test_the_chain_tiny_small_base_large_at_reduced_depth():
    shape = dict(num_frames=4, image_size=32, patch_size=8, small_crop_size=16)
    config = VidropConfig.from_preset("tiny", num_hidden_layers=2, **shape)
    small = _perturbed(VidropModel(config))
    state, back, current = small.state_dict(), [], config
    for preset, depth in (("small", 3), ("base", 4), ("large", 5)):  # 192 -> 384 -> 768 -> 1024 wide
        grown = grow_model(current, state, {**PRESETS[preset], "num_hidden_layers": depth}, noise=0.05, seed=depth)
        state, current = grown.state, grown.config
        back.append(grown.features_back)
    assert (current.hidden_size, current.num_attention_heads, current.intermediate_size) == (1024, 16, 4096)

    def features_back(features):
        for step in reversed(back):
            features = step(features)
        return features

    chained = Grown(current, state, features_back)
    _assert_preserved(small, chained, _grown_model(chained), rtol=1e-5, atol=2e-5)


def _ssl_states(model):
    student = {k[len("student."):]: v for k, v in model.state_dict().items() if k.startswith("student.")}
    others = {k: v for k, v in model.state_dict().items() if not k.startswith("student.")}
    return student, dict(model.teacher.state_dict()), others


@pytest.mark.parametrize("loss_type, target", [("dino_ibot", "all"), ("dino_ibot", "width-4/3"), ("mse", "all-x2"),
                                               ("smooth_l1", "all-x2"), ("cosine", "all-x2")])
def test_the_ssl_loss_is_preserved(tiny_config, ssl_batch, loss_type, target):
    config = tiny_config(loss_type=loss_type, drop_rate=0.5)
    torch.manual_seed(0)
    small = SelfDistillation(config)
    _perturbed(small.student)
    with torch.no_grad():
        for name, parameter in small.teacher.named_parameters():  # a teacher that differs from the student
            parameter.copy_(dict(small.student.named_parameters())[name] + 0.01 * torch.randn_like(parameter))
    student, teacher, others = _ssl_states(small)
    grown_student = grow(config, student, TARGETS[target], noise=0.1, seed=7)
    grown_teacher = grow(config, teacher, TARGETS[target], noise=0.1, seed=7)
    big = SelfDistillation(grown_student.config)
    big.load_state_dict({**{f"student.{k}": v for k, v in grown_student.state.items()}, **others})
    big.teacher.load_state_dict(grown_teacher.state)
    batch = ssl_batch(config, batch=2)
    small_loss, _ = small(batch, teacher_temperature=0.05)
    big_loss, _ = big(batch, teacher_temperature=0.05)
    torch.testing.assert_close(big_loss, small_loss, rtol=1e-5, atol=0)


def test_the_checks_fail_for_growth_that_breaks_the_function(tiny_config):
    """Negative controls: zero padding the residual stream (LayerNorm statistics change) and a new block whose
    outputs are not zeroed."""
    config = tiny_config()
    small = _perturbed(VidropModel(config))
    correct = grow_model(config, small.state_dict(), dict(hidden_size=96))
    padded = {}
    for name, tensor in correct.state.items():  # the old weights in the leading slices, zeros elsewhere
        old = small.state_dict().get(name, torch.eye(48))  # the position projection starts as the identity
        padded[name] = torch.zeros_like(tensor)
        padded[name][tuple(slice(0, n) for n in old.shape)] = old
    with pytest.raises(AssertionError):
        _assert_preserved(small, correct, _grown_model(Grown(correct.config, padded, correct.features_back)))
    deeper = grow_model(config, small.state_dict(), dict(num_hidden_layers=3), placement="end")
    unzeroed = dict(deeper.state)
    for name in ("attention.proj.weight", "mlp.fc2.weight"):
        unzeroed[f"encoder.layer.2.{name}"] = small.state_dict()[f"encoder.layer.1.{name}"]
    with pytest.raises(AssertionError):
        _assert_preserved(small, deeper, _grown_model(Grown(deeper.config, unzeroed, deeper.features_back)))


@pytest.mark.parametrize("noise", [0.0, 0.1])
def test_clones_diverge_in_training_only_with_noise(tiny_config, noise):
    config = tiny_config()
    small = _perturbed(VidropModel(config))
    grown = grow_model(config, small.state_dict(), dict(intermediate_size=192, hidden_size=96), noise=noise, seed=0)
    big = _grown_model(grown).train()
    optimizer = torch.optim.AdamW(big.parameters(), lr=1e-3)
    target = torch.randn(2, 33, 48, generator=torch.Generator().manual_seed(5))
    for step in range(10):  # a loss that reads both copies of a channel alike, as the grown heads do
        features = big(_clips(seed=step)).last_hidden_state  # (B, 1 + N, 96)
        loss = ((features[..., :48] + features[..., 48:]) / 2 - target).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    fc1 = big.encoder.layer[0].mlp.fc1.weight.detach()  # unit i and its clone 96 + i
    channels = big.embeddings.patch_embeddings.projection.weight.detach().flatten(1)  # channel c and 48 + c
    gaps = [(fc1[96:] - fc1[:96]).abs().max(), (channels[48:] - channels[:48]).abs().max()]
    if noise:
        assert all(gap > 1e-4 for gap in gaps), gaps
    else:  # exact clones receive equal gradients: they never separate (what the noise is for)
        assert all(gap < 1e-6 for gap in gaps), gaps


def _trained_with_adam(config, steps):
    """`(model, Adam state by name, parameters by name)` after `steps` AdamW steps, names in the `grow` layout."""
    small = _perturbed(VidropModel(config)).train()
    optimizer = torch.optim.AdamW(small.parameters(), lr=1e-3)
    for step in range(steps):
        optimizer.zero_grad()
        small(_clips(seed=step)).last_hidden_state.square().mean().backward()
        optimizer.step()
    named = {f"backbone.{n}": optimizer.state[p] for n, p in small.named_parameters()}
    return small, named, {f"backbone.{n}": p.detach() for n, p in small.named_parameters()}


def test_adam_moments_follow_the_weights(tiny_config):
    config = tiny_config()
    small, named, parameters = _trained_with_adam(config, 3)
    target = dict(hidden_size=96, intermediate_size=192, num_hidden_layers=3)
    moments = grow_adam_state(config, parameters, named, target)
    grown = grow_model(config, small.state_dict(), target)
    big = _grown_model(grown).train()
    params = dict(big.named_parameters())
    assert set(moments) == {f"backbone.{n}" for n in params}
    for name, state in moments.items():
        assert state["exp_avg"].shape == state["exp_avg_sq"].shape == params[name[len("backbone."):]].shape
        assert float(state["step"]) == 3
    old = named["backbone.encoder.layer.0.mlp.fc2.weight"]
    new = moments["backbone.encoder.layer.0.mlp.fc2.weight"]  # columns shared by a unit and its clone
    torch.testing.assert_close(new["exp_avg"][:48, 96:], old["exp_avg"] / 2)
    torch.testing.assert_close(new["exp_avg_sq"][:48, 96:], old["exp_avg_sq"] / 4)
    inserted = [i for i in range(3) if not moments[f"backbone.encoder.layer.{i}.mlp.fc2.weight"]["exp_avg"].any()]
    assert len(inserted) == 1  # the new block's zeroed output projection starts without momentum
    optimizer = torch.optim.AdamW(big.parameters(), lr=1e-3)
    optimizer.load_state_dict({"state": {i: moments[f"backbone.{n}"] for i, n in enumerate(params)},
                               "param_groups": optimizer.state_dict()["param_groups"]})
    big(_clips()).last_hidden_state.square().mean().backward()
    optimizer.step()  # resumes with the mapped moments


def test_student_and_teacher_grow_with_the_same_draws(tiny_config):
    state = {f"backbone.{k}": v for k, v in _perturbed(VidropModel(tiny_config())).state_dict().items()}
    first = grow(tiny_config(), state, TARGETS["all"], noise=0.2, seed=11)
    again = grow(tiny_config(), state, TARGETS["all"], noise=0.2, seed=11)
    other = grow(tiny_config(), state, TARGETS["all"], noise=0.2, seed=12)
    assert all(torch.equal(first.state[k], again.state[k]) for k in first.state)
    assert not all(torch.equal(first.state[k], other.state[k]) for k in first.state)


@pytest.mark.parametrize("target, message", [
    (dict(hidden_size=32), r"hidden_size=32 is smaller than 48; allowed: >= 48"),
    (dict(hidden_size=96, num_attention_heads=6, intermediate_size=50), r"cannot grow to a smaller shape: interm"),
    (dict(num_hidden_layers=1), r"num_hidden_layers=1 < 2"),
    (dict(patch_size=4, image_size=32), r"patch_size differs \(8 -> 4\)"),
    ("gigantic", r"target='gigantic' is not a preset"),
    (dict(hidden_size=60, num_attention_heads=2), r"cannot grow to a smaller shape: num_attention_heads=2 < 3"),
    (dict(hidden_size=60, num_attention_heads=4),
     r"num_attention_heads=4 for hidden_size=60; allowed: at least 3 heads of at least 16 channels"),
])
def test_growing_to_a_smaller_or_incompatible_shape_is_an_error(tiny_config, target, message):
    config = tiny_config()
    with pytest.raises(ValueError, match=message):
        grow_model(config, VidropModel(config).state_dict(), target)
    with pytest.raises(ValueError, match=r"loss_type='mse' regresses features elementwise"):
        grow_model(tiny_config(loss_type="mse"), VidropModel(config).state_dict(), dict(hidden_size=64))


def test_the_launcher_grows_a_folder(tiny_config, tmp_path):
    from transformers import AutoModel

    small = _perturbed(VidropModel(tiny_config()))
    small.save_pretrained(tmp_path / "small")
    (tmp_path / "target.json").write_text('{"hidden_size": 96, "num_hidden_layers": 4}')
    subprocess.run([sys.executable, str(ROOT / "launchers" / "expand.py"), "--from_pretrained", str(tmp_path / "small"),
                    "--to", str(tmp_path / "target.json"), "--output_dir", str(tmp_path / "big"), "--noise", "0.1"],
                   check=True, capture_output=True)
    big = AutoModel.from_pretrained(tmp_path / "big").eval()
    assert (big.config.hidden_size, big.config.num_hidden_layers, big.config.num_attention_heads) == (96, 4, 6)
    clips = _clips()
    torch.testing.assert_close(big(clips).last_hidden_state[..., :48], small(clips).last_hidden_state, **TOLERANCE)


# --------------------------------------------------------------------------------------------------- growth by masks


def _grown_by_masks(config, model, target, fraction=0.0, seed=3):
    """`(Grown, big VidropModel)`: `model` grown by masks, its masks set at `fraction`."""
    state = {f"backbone.{k}": v for k, v in model.state_dict().items()}
    grown = grow_masked(config, state, target, seed=seed)
    bare = Grown(grown.config, {k[len("backbone."):]: v for k, v in grown.state.items()}, grown.features_back)
    big = _grown_model(bare)
    big.set_growth_masks(fade_masks(config, grown.config, fraction))
    return bare, big


def _assert_masked_growth_preserves_until_faded_in(config, small, target):
    """Preserved under masks at 0 (new channels silent); at 0.5 and unmasked the function moves (the negative
    control: without masks the check fails)."""
    grown, big = _grown_by_masks(config, small, target)
    _assert_preserved(small, grown, big)
    clips = _clips()
    with torch.no_grad():
        at_zero = big(clips).last_hidden_state
        assert not at_zero[..., config.hidden_size:].any()  # new channels silent
        big.set_growth_masks(fade_masks(config, grown.config, 0.5))
        half = big(clips).last_hidden_state
        big.set_growth_masks(None)  # negative control: the fresh units unmasked
        plain = big(clips).last_hidden_state
    assert fade_masks(config, grown.config, 1.0) is None  # faded in: the plain big model
    assert (half - at_zero).abs().max() > 1e-3 and (plain - half).abs().max() > 1e-3
    with pytest.raises(AssertionError):
        _assert_preserved(small, grown, big)


def test_masked_growth_is_checked_by_the_negative_control_of_a_wrong_mask(tiny_config):
    """A mask built for another start (the new units taken for old ones) fails the check."""
    config = tiny_config()
    small = _perturbed(VidropModel(config))
    grown, big = _grown_by_masks(config, small, TARGETS["all"])
    wrong = fade_masks(tiny_config(intermediate_size=150), grown.config, 0.0)  # new MLP units left on
    big.set_growth_masks(wrong)
    with pytest.raises(AssertionError):
        _assert_preserved(small, grown, big)


@pytest.mark.parametrize("loss_type, target", [("dino_ibot", "all"), ("dino_ibot", "width-4/3"), ("mse", "mlp"),
                                               ("cosine", "depth")])
def test_growth_by_masks_preserves_the_ssl_loss(tiny_config, ssl_batch, loss_type, target):
    config = tiny_config(loss_type=loss_type, drop_rate=0.5)
    torch.manual_seed(0)
    small = SelfDistillation(config)
    _perturbed(small.student)
    student, teacher, others = _ssl_states(small)
    grown_student = grow_masked(config, student, TARGETS[target], seed=7)
    grown_teacher = grow_masked(config, teacher, TARGETS[target], seed=7)
    big = SelfDistillation(grown_student.config)
    big.load_state_dict({**{f"student.{k}": v for k, v in grown_student.state.items()}, **others})
    big.teacher.load_state_dict(grown_teacher.state)
    masks = fade_masks(config, grown_student.config, 0.0)
    for backbone in (big.student["backbone"], big.teacher["backbone"]):
        backbone.set_growth_masks(masks)
    batch = ssl_batch(config, batch=2)
    small_loss, _ = small(batch, teacher_temperature=0.05)
    big_loss, _ = big(batch, teacher_temperature=0.05)
    torch.testing.assert_close(big_loss, small_loss, rtol=1e-5, atol=0)


def test_new_units_start_fresh_and_learn_only_once_faded_in(tiny_config):
    """The new units are drawn like a fresh model's (not copies), the student and teacher draws agree for a seed,
    and the new units receive gradient only when their mask is above 0."""
    config = tiny_config()
    small = _perturbed(VidropModel(config))
    target = dict(hidden_size=96, intermediate_size=192, num_hidden_layers=3)
    grown, big = _grown_by_masks(config, small, target)
    _, again = _grown_by_masks(config, small, target)
    _, other = _grown_by_masks(config, small, target, seed=4)
    fc1 = big.encoder.layer[0].mlp.fc1.weight.detach()  # (192, 96)
    torch.testing.assert_close(fc1[:96, :48], small.encoder.layer[0].mlp.fc1.weight.detach())
    assert 0.01 < float(fc1[96:].std()) < 0.03  # initializer_range 0.02, not a copy of the old rows
    assert all(torch.equal(a, b) for a, b in zip(big.state_dict().values(), again.state_dict().values()))
    assert not torch.equal(fc1, other.encoder.layer[0].mlp.fc1.weight)
    # a teacher grown from the student's result gets the same new units as one drawn again with the seed
    teacher = {f"backbone.{k}": v + 1 for k, v in small.state_dict().items()}
    student = {f"backbone.{k}": v for k, v in grown.state.items()}
    unchanged = {k: v.clone() for k, v in student.items()}
    drawn_again = grow_masked(config, teacher, target, seed=3).state
    from_student = grow_masked(config, teacher, target, fresh=student).state
    assert drawn_again.keys() == from_student.keys()
    assert all(torch.equal(drawn_again[k], from_student[k]) for k in drawn_again)
    assert all(torch.equal(student[k], unchanged[k]) for k in student)  # read, not changed
    with pytest.raises(ValueError, match="role='weight'"):
        grow_masked(config, teacher, target, "exp_avg", fresh=student)
    for fraction, learns in ((0.0, False), (0.25, True)):
        big.zero_grad()
        big.set_growth_masks(fade_masks(config, grown.config, fraction))
        big(_clips()).last_hidden_state.square().mean().backward()
        new_grads = [big.encoder.layer[0].mlp.fc1.weight.grad[96:], big.encoder.layer[1].mlp.fc2.weight.grad,
                     big.embeddings.patch_embeddings.projection.weight.grad[48:]]  # layer 1 is the new block
        assert all(bool(g.any()) == learns for g in new_grads), fraction
        assert big.encoder.layer[0].mlp.fc1.weight.grad[:96].any()


def test_masked_growth_maps_adam_moments(tiny_config):
    config = tiny_config()
    _, named, parameters = _trained_with_adam(config, 2)
    target = TARGETS["head-dim"]  # 3 heads of 16 -> 3 heads of 32: queries scaled by sqrt(2)
    moments = grow_adam_state(config, parameters, named, target, masked=True)
    weights = grow_masked(config, parameters, target).state
    assert set(moments) == set(weights) - {"backbone.embeddings.position_projection"}  # parameters, no buffer
    qkv = "backbone.encoder.layer.0.attention.qkv.weight"
    old, new = named[qkv], moments[qkv]
    old, new = ({k: s[k].reshape(3, 3, -1, s[k].shape[-1]) for k in ("exp_avg", "exp_avg_sq")} for s in (old, new))
    torch.testing.assert_close(new["exp_avg"][0, :, :16, :48], old["exp_avg"][0] * 2 ** 0.5)
    torch.testing.assert_close(new["exp_avg_sq"][0, :, :16, :48], old["exp_avg_sq"][0] * 2)
    torch.testing.assert_close(new["exp_avg"][1:, :, :16, :48], old["exp_avg"][1:])
    assert not new["exp_avg"][:, :, 16:].any() and not new["exp_avg_sq"][..., 48:].any()
    assert float(moments[qkv]["step"]) == 2


def test_growth_by_masks_of_a_regressed_width_is_an_error(tiny_config):
    config = tiny_config(loss_type="mse")
    state = {f"backbone.{k}": v for k, v in VidropModel(config).state_dict().items()}
    with pytest.raises(ValueError, match=r"loss_type='mse' regresses every residual channel.*allowed: growth by "
                                         r"masks of the hidden width with loss_type='dino_ibot'"):
        grow_masked(config, state, dict(hidden_size=96))
