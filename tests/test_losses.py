import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vidrop.losses import (
    DINOClsLoss,
    FeatureRegressionLoss,
    IBOTPatchLoss,
    KoLeoLoss,
    TeacherCentering,
    entropy_of_mean_prediction,
    mean_entropy,
    soft_cross_entropy,
    view_pairs,
)
from vidrop.training.launch import free_port


def test_soft_cross_entropy_known_values():
    # uniform student over 2 classes, one-hot teacher: log 2
    assert soft_cross_entropy(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]), 1.0).item() == pytest.approx(math.log(2))
    # the temperature divides the logits: logits (0, ln 3) at tau=0.5 are (0, 2 ln 3): p = (0.1, 0.9)
    value = soft_cross_entropy(torch.tensor([[0.0, math.log(3)]]), torch.tensor([[0.5, 0.5]]), 0.5)
    assert value.item() == pytest.approx(-(0.5 * math.log(0.1) + 0.5 * math.log(0.9)), rel=1e-6)


def test_mean_entropy_is_log_p_for_uniform_and_zero_for_one_hot_targets():
    assert mean_entropy(torch.full((3, 8), 1 / 8)).item() == pytest.approx(math.log(8), rel=1e-6)
    assert mean_entropy(torch.eye(4)).item() == 0.0
    rows = torch.tensor([[0.5, 0.5, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])  # log 2 and 0
    assert mean_entropy(rows).item() == pytest.approx(math.log(2) / 2, rel=1e-6)


def test_view_pairs_skip_the_same_view():
    assert view_pairs(3, 2) == [(0, 1), (1, 0), (2, 0), (2, 1)]
    assert view_pairs(2, 2) == [(0, 1), (1, 0)]


def test_dino_cls_loss_averages_cross_view_pairs():
    student = torch.tensor(
        [[[0.0, 0.0]], [[math.log(3), 0.0]], [[0.0, math.log(3)]]]
    )  # (Vs=3, B=1, P=2): p = (.5,.5), (.75,.25), (.25,.75)
    teacher = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])  # (Vt=2, B=1, P=2)
    expected = (
        -math.log(0.5)  # student view 0 vs teacher view 1
        - math.log(0.75)  # student view 1 vs teacher view 0
        - math.log(0.25)  # small crop vs teacher view 0
        - math.log(0.75)  # small crop vs teacher view 1
    ) / 4
    assert DINOClsLoss(student_temperature=1.0)(student, teacher).item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="no cross-view pairs"):
        DINOClsLoss()(student[:1], teacher[:1])


def test_ibot_patch_loss_is_the_mean_over_targets():
    student = torch.tensor([[0.0, 0.0], [math.log(3), 0.0]])
    teacher = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    expected = (-math.log(0.5) - math.log(0.75)) / 2
    assert IBOTPatchLoss(student_temperature=1.0)(student, teacher).item() == pytest.approx(expected, rel=1e-6)


def test_center_is_an_ema_of_the_batch_mean_and_is_subtracted():
    centering = TeacherCentering(2, "center", momentum=0.9)
    logits = torch.tensor([[1.0, 3.0], [3.0, 5.0]])
    torch.testing.assert_close(centering(logits, 1.0), torch.softmax(logits, -1))  # zero center at first
    centering.update(logits)
    torch.testing.assert_close(centering.center, torch.tensor([[0.2, 0.4]]))
    centering.update(logits)
    torch.testing.assert_close(centering.center, torch.tensor([[0.2 * 0.9 + 0.2, 0.4 * 0.9 + 0.4]]))
    torch.testing.assert_close(centering(logits, 0.5), torch.softmax((logits - centering.center) / 0.5, -1))
    assert "center" in centering.state_dict()


def test_entropy_of_mean_prediction_is_high_only_when_the_rows_spread_over_prototypes():
    spread = torch.eye(4) * 50.0  # four sharp rows on four different prototypes
    assert entropy_of_mean_prediction(spread, 1.0).item() == pytest.approx(math.log(4), rel=1e-5)
    same = spread[[0, 0, 0, 0]]  # every row on prototype 0
    assert entropy_of_mean_prediction(same, 1.0).item() == pytest.approx(0.0, abs=1e-5)
    # leading axes are rows too, and the temperature softens every row before the mean
    views = torch.tensor([[[1.0, 0.0]], [[1.0, 0.0]]])  # (V=2, B=1, P=2)
    probs = torch.softmax(torch.tensor([1.0, 0.0]) / 0.5, -1)
    expected = -(probs * probs.log()).sum().item()
    assert entropy_of_mean_prediction(views, 0.5).item() == pytest.approx(expected, rel=1e-6)
    # ascending it pulls collapsed rows apart
    logits = (torch.randn(8, 4) * 0.01).requires_grad_(True)
    optimizer = torch.optim.SGD([logits], lr=20.0)
    before = entropy_of_mean_prediction(logits + torch.tensor([5.0, 0, 0, 0]), 1.0).item()
    for _ in range(50):
        optimizer.zero_grad()
        (-entropy_of_mean_prediction(logits + torch.tensor([5.0, 0, 0, 0]), 1.0)).backward()
        optimizer.step()
    assert entropy_of_mean_prediction(logits + torch.tensor([5.0, 0, 0, 0]), 1.0).item() > before + 0.5


def test_centering_none_only_sharpens():
    centering = TeacherCentering(2, "none")
    logits = torch.tensor([[1.0, 3.0], [3.0, 5.0]])
    centering.update(logits)
    torch.testing.assert_close(centering(logits, 0.25), torch.softmax(logits / 0.25, -1))
    allowed = "allowed: 'center', 'sinkhorn_knopp', 'none'"
    with pytest.raises(ValueError, match=f"centering='mean' is not supported; {allowed}"):
        TeacherCentering(2, "mean")


def test_sinkhorn_knopp_balances_prototypes():
    symmetric = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    torch.testing.assert_close(TeacherCentering(2, "sinkhorn_knopp")(symmetric, 1.0), torch.softmax(symmetric, -1))
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 8, generator=generator) + torch.tensor([3.0] + [0.0] * 7)  # prototype 0 dominates
    probs = TeacherCentering(8, "sinkhorn_knopp", iterations=50)(logits, 0.5)
    torch.testing.assert_close(probs.sum(1), torch.ones(64))
    torch.testing.assert_close(probs.sum(0), torch.full((8,), 8.0), rtol=1e-3, atol=1e-3)
    assert torch.softmax(logits / 0.5, -1).sum(0)[0] > 40  # without balancing one prototype takes most mass


def test_koleo_is_minus_the_mean_log_distance_to_the_nearest_neighbour_and_spreads_features():
    koleo = KoLeoLoss()
    # unit vectors at 0, 90 and 180 degrees: every nearest neighbour is sqrt(2) away (the scale is normalised away)
    features = torch.tensor([[[1.0, 0.0], [0.0, 3.0], [-2.0, 0.0]]])  # (V=1, B=3, D=2)
    assert koleo(features).item() == pytest.approx(-math.log(math.sqrt(2.0)), rel=1e-6)
    # two views are averaged: a second view of two nearly equal clips pulls the mean up
    close = torch.tensor([[[1.0, 0.0], [1.0, 0.01], [0.0, 1.0]]])
    both = koleo(torch.cat([features, close]))
    assert both.item() == pytest.approx((koleo(features).item() + koleo(close).item()) / 2, rel=1e-6)
    assert koleo(close).item() > koleo(features).item()
    # descending the loss pushes clustered features apart
    points = torch.randn(1, 8, 4) * 0.01 + torch.tensor([1.0, 0.0, 0.0, 0.0])
    points.requires_grad_(True)
    optimizer = torch.optim.SGD([points], lr=0.1)
    start = koleo(points).item()
    for _ in range(50):
        optimizer.zero_grad()
        koleo(points).backward()
        optimizer.step()
    assert koleo(points).item() < start - 1.0
    with pytest.raises(ValueError, match="at least 2 clips"):
        koleo(torch.randn(2, 1, 4))


def test_regression_losses_known_values():
    prediction = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    target = torch.tensor([[0.0, 1.0], [0.0, 4.0]])
    assert FeatureRegressionLoss("mse")(prediction, target).item() == pytest.approx((1 + 1 + 0 + 4) / 4)
    assert FeatureRegressionLoss("cosine")(prediction, target).item() == pytest.approx((1 + 0) / 2)
    assert FeatureRegressionLoss("smooth_l1")(prediction, target).item() == pytest.approx((0.5 + 0.5 + 0 + 1.5) / 4)
    with pytest.raises(ValueError, match="loss_type='huber' is not a regression loss"):
        FeatureRegressionLoss("huber")



def _centering_worker(rank, world_size, port, logits, results):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    shard = logits.chunk(world_size)[rank]
    center = TeacherCentering(logits.shape[1], "center", momentum=0.5)
    center.update(shard)
    sinkhorn = TeacherCentering(logits.shape[1], "sinkhorn_knopp")(shard, 0.1)
    results[rank] = (center.center.clone(), sinkhorn.clone())
    dist.destroy_process_group()


def test_centering_over_two_ranks_equals_one_process_with_the_whole_batch():
    logits = torch.randn(16, 6, generator=torch.Generator().manual_seed(0))
    results = mp.Manager().dict()
    mp.spawn(_centering_worker, args=(2, free_port(), logits, results), nprocs=2)
    reference = TeacherCentering(6, "center", momentum=0.5)
    reference.update(logits)
    reference_sinkhorn = TeacherCentering(6, "sinkhorn_knopp")(logits, 0.1)
    for rank in range(2):
        torch.testing.assert_close(results[rank][0], reference.center)
        torch.testing.assert_close(results[rank][1], reference_sinkhorn.chunk(2)[rank])


def test_center_stays_fp32_when_the_module_is_cast_to_bf16():
    centering = TeacherCentering(4, "center", momentum=0.9).to(torch.bfloat16)
    assert centering.center.dtype == torch.float32
    centering.update(torch.randn(8, 4, dtype=torch.bfloat16))
    assert centering.center.dtype == torch.float32 and centering.center.abs().sum() > 0
