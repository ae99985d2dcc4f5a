import math

import pytest
import torch

from vidrop.ssl import SelfDistillation


def _ssl(config, seed=0):
    torch.manual_seed(seed)
    return SelfDistillation(config)


def test_forward_returns_loss_and_metrics_without_backward(tiny_config, ssl_batch):
    config = tiny_config(drop_rate=0.5, mask_ratio=0.5)
    model = _ssl(config)
    batch = ssl_batch(config)
    loss, metrics = model(batch)
    assert loss.ndim == 0 and loss.requires_grad and torch.isfinite(loss)
    assert all(p.grad is None for p in model.parameters())
    assert set(metrics) == {
        "loss", "cls_loss", "patch_loss", "koleo_loss", "student_mean_entropy", "kept_tokens_per_clip",
        "masked_tokens_per_clip", "teacher_cls_entropy", "teacher_patch_entropy", "teacher_cls_prototypes_used",
        "teacher_patch_prototypes_used",
    }
    torch.testing.assert_close(metrics["loss"], metrics["cls_loss"] + metrics["patch_loss"])
    assert metrics["koleo_loss"].item() == 0.0 and metrics["student_mean_entropy"].item() == 0.0  # off by default
    # 2 global views of 16 kept tokens + 2 small crops of 4 (of 8) kept tokens; half of the global kept tokens masked
    assert metrics["kept_tokens_per_clip"].item() == 2 * 16 + 2 * 4
    assert metrics["masked_tokens_per_clip"].item() == 2 * 8


def test_gradients_reach_the_student_and_never_the_teacher(tiny_config, ssl_batch):
    config = tiny_config(drop_rate=0.5)
    model = _ssl(config).train()
    loss, _ = model(ssl_batch(config))
    loss.backward()
    for name, param in model.student.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert all(not p.requires_grad and p.grad is None for p in model.teacher.parameters())
    assert not model.teacher.training
    # the teacher is outside the trained module: an engine wrapping `model` neither casts nor shards it
    assert not any(name.startswith("teacher") for name in model.state_dict())
    assert {id(p) for p in model.parameters()}.isdisjoint({id(p) for p in model.teacher.parameters()})


def test_ema_update_equals_the_formula(tiny_config):
    model = _ssl(tiny_config())
    with torch.no_grad():
        for param in model.student.parameters():
            param.add_(torch.randn_like(param))
    before = {n: p.clone() for n, p in model.teacher.named_parameters()}
    student = dict(model.student.named_parameters())
    model.update_teacher(0.9)
    for name, param in model.teacher.named_parameters():
        torch.testing.assert_close(param, 0.9 * before[name] + 0.1 * student[name])
    model.update_teacher(0.0)
    for name, param in model.teacher.named_parameters():
        assert torch.equal(param, student[name])
    with pytest.raises(ValueError, match=r"momentum=1.5 is out of range; allowed: \[0, 1\]"):
        model.update_teacher(1.5)


@pytest.mark.parametrize(
    "overrides, momentum",
    [
        (dict(loss_type="dino_ibot", centering="sinkhorn_knopp"), 1.0),
        (dict(loss_type="dino_ibot", centering="center", center_momentum=0.0), 1.0),
        (dict(loss_type="mse"), 0.99),
        (dict(loss_type="cosine"), 0.99),
        (dict(loss_type="smooth_l1"), 0.99),
    ],
)
def test_thirty_steps_on_a_fixed_batch_lower_the_loss(tiny_config, ssl_batch, overrides, momentum):
    config = tiny_config(drop_rate=0.5, **overrides)
    model = _ssl(config).train()
    batch = ssl_batch(config, batch=4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(31):
        loss, _ = model(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.update_teacher(momentum)
        losses.append(loss.item())
    # step 0 of the EMA-centered loss precedes the first center update; compare from step 1
    assert losses[-1] < 0.9 * losses[1], losses


def test_teacher_sees_dropped_tokens(tiny_config, ssl_batch):
    config = tiny_config(drop_rate=0.5, teacher_sees_dropped_tokens=True)
    model = _ssl(config)
    batch = ssl_batch(config)
    pixels, keep = batch["global_pixel_values"].flatten(0, 1), batch["global_keep_indices"].flatten(0, 1)
    cls, tokens = model._encode_teacher(pixels, keep)
    dense = model.teacher["backbone"](pixels).last_hidden_state
    torch.testing.assert_close(cls, dense[:, 0])
    torch.testing.assert_close(tokens, dense[:, 1:].gather(1, keep[..., None].expand(-1, -1, dense.shape[-1])))
    sparse = model.teacher["backbone"](pixels, keep).last_hidden_state
    assert not torch.allclose(tokens, sparse[:, 1:])
    assert torch.isfinite(model(batch)[0])


def test_no_mask_and_no_small_crops(tiny_config, ssl_batch):
    config = tiny_config(drop_rate=0.5, mask_ratio=0.0, num_small_crops=0)
    model = _ssl(config)
    batch = ssl_batch(config)
    assert "small_pixel_values" not in batch
    loss, metrics = model(batch)
    assert metrics["patch_loss"].item() == 0.0 and metrics["masked_tokens_per_clip"].item() == 0
    assert "teacher_patch_entropy" not in metrics and "teacher_patch_prototypes_used" not in metrics  # no targets
    loss.backward()
    assert model.student["backbone"].embeddings.cls_token.grad.abs().sum() > 0


def test_koleo_weight_adds_the_spread_of_the_global_views_cls_features(tiny_config, ssl_batch):
    config = tiny_config(drop_rate=0.5, mask_ratio=0.5, koleo_loss_weight=0.5)
    model = _ssl(config)
    loss, metrics = model(ssl_batch(config))
    assert metrics["koleo_loss"].item() != 0.0
    torch.testing.assert_close(
        metrics["loss"], metrics["cls_loss"] + metrics["patch_loss"] + 0.5 * metrics["koleo_loss"]
    )
    loss.backward()
    assert model.student["backbone"].embeddings.cls_token.grad.abs().sum() > 0


def test_mean_entropy_weight_rewards_predictions_spread_over_the_prototypes(tiny_config, ssl_batch):
    config = tiny_config(drop_rate=0.5, mask_ratio=0.5, centering="none", mean_entropy_weight=0.5)
    model = _ssl(config).train()
    batch = ssl_batch(config)
    loss, metrics = model(batch)
    # the entropy of the mean prediction of each head, at most log P for each
    assert 0.0 < metrics["student_mean_entropy"].item() <= math.log(config.num_prototypes) + math.log(
        config.num_patch_prototypes
    )
    torch.testing.assert_close(
        metrics["loss"], metrics["cls_loss"] + metrics["patch_loss"] - 0.5 * metrics["student_mean_entropy"]
    )
    loss.backward()
    assert model.student["cls_head"].prototypes.grad.abs().sum() > 0
    # no centering: the teacher's targets are its sharpened logits, and no state moves
    assert model.cls_centering.center.abs().sum() == 0
    with torch.no_grad():
        logits = model.teacher["cls_head"](model._encode_teacher(
            batch["global_pixel_values"].flatten(0, 1), batch["global_keep_indices"].flatten(0, 1))[0])
    torch.testing.assert_close(model.cls_centering(logits, 0.1), torch.softmax(logits / 0.1, -1))


def test_teacher_entropy_metrics_watch_the_targets_for_collapse(tiny_config, ssl_batch):
    config = tiny_config(drop_rate=0.5, mask_ratio=0.5)
    model = _ssl(config).eval()
    batch = ssl_batch(config)
    # a hot teacher gives (nearly) uniform targets: entropy log P, the collapse the metric is there to show
    _, hot = model(batch, teacher_temperature=1e4)
    assert hot["teacher_cls_entropy"].item() == pytest.approx(math.log(config.num_prototypes), rel=1e-4)
    assert hot["teacher_patch_entropy"].item() == pytest.approx(math.log(config.num_patch_prototypes), rel=1e-4)
    # ... spread over every prototype
    assert hot["teacher_cls_prototypes_used"].item() == pytest.approx(config.num_prototypes, rel=1e-3)
    # a cold teacher gives (nearly) one-hot targets, on at most as many prototypes as the batch has rows
    _, cold = model(batch, teacher_temperature=1e-5)
    assert cold["teacher_cls_entropy"].item() < 0.05 and cold["teacher_patch_entropy"].item() < 0.05
    rows = batch["global_pixel_values"].shape[0] * batch["global_pixel_values"].shape[1]
    assert 1.0 <= cold["teacher_cls_prototypes_used"].item() <= rows + 1e-3
    # every clip on the same prototype: the collapse that mean entropy does not show
    with torch.no_grad():
        model.teacher["cls_head"].mlp[-1].weight.zero_()
        model.teacher["cls_head"].mlp[-1].bias.fill_(1.0)
    _, same = model(batch, teacher_temperature=1e-5)
    assert same["teacher_cls_entropy"].item() < 0.05
    assert same["teacher_cls_prototypes_used"].item() == pytest.approx(1.0, abs=1e-3)


def test_centers_move_only_in_training(tiny_config, ssl_batch):
    config = tiny_config()
    model = _ssl(config).eval()
    batch = ssl_batch(config)
    model(batch)
    assert model.cls_centering.center.abs().sum() == 0 and model.patch_centering.center.abs().sum() == 0
    model.train()(batch)
    assert model.cls_centering.center.abs().sum() > 0 and model.patch_centering.center.abs().sum() > 0


def test_bf16_student_keeps_an_fp32_teacher(tiny_config, ssl_batch):
    config = tiny_config(drop_rate=0.5)
    model = _ssl(config)
    model.to(torch.bfloat16)
    assert all(p.dtype == torch.float32 for p in model.teacher.parameters())
    loss, _ = model(ssl_batch(config))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    model.update_teacher(0.5)
    assert all(p.dtype == torch.float32 for p in model.teacher.parameters())


def test_a_pretrained_backbone_is_trained_in_place(tiny_config):
    from vidrop import VidropModel

    config = tiny_config()
    backbone = VidropModel(config)
    model = SelfDistillation(config, backbone=backbone)
    assert model.student["backbone"] is backbone
    for (name, t), s in zip(model.teacher["backbone"].named_parameters(), backbone.parameters()):
        assert torch.equal(t, s) and t is not s, name
