"""Losses of the self-distillation objective: small modules, tensors in, scalars out.

The teacher side of the prototype losses is a `TeacherCentering` module (its own EMA center buffer, or
Sinkhorn-Knopp); the student side is a cross-entropy (`DINOClsLoss` across views, `IBOTPatchLoss` per
patch). `FeatureRegressionLoss` is the alternative that regresses the teacher's features directly. Every
statistic that spans the batch is all-reduced when `torch.distributed` is initialised, so that N ranks
compute what one rank with the whole batch would.
"""

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .models.configuration_vidrop import CENTERINGS

REGRESSION_LOSSES = ("mse", "cosine", "smooth_l1")


def _distributed():
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _all_reduce(tensor, op=None):
    """Sum (or `op`) of `tensor` over ranks, in place; the identity in one process."""
    if _distributed():
        dist.all_reduce(tensor, op=op or dist.ReduceOp.SUM)
    return tensor


def view_pairs(num_student_views, num_teacher_views):
    """The (student view, teacher view) pairs a cross-view loss averages over.

    Views `0..num_teacher_views-1` are the global views seen by both; a view is never paired with itself.
    """
    return [(s, t) for s in range(num_student_views) for t in range(num_teacher_views) if s != t]


def average_over_view_pairs(student, teacher, pair_loss):
    """Mean of `pair_loss(student[s], teacher[t])` over `view_pairs`;
    `student` `(Vs, B, ...)`, `teacher` `(Vt, B, ...)`."""
    pairs = view_pairs(student.shape[0], teacher.shape[0])
    if not pairs:
        raise ValueError(
            f"no cross-view pairs for {student.shape[0]} student and {teacher.shape[0]} teacher views; "
            "allowed: at least two global views, or one global view and a small crop"
        )
    return sum(pair_loss(student[s], teacher[t]) for s, t in pairs) / len(pairs)


def soft_cross_entropy(student_logits, teacher_probs, student_temperature):
    """Per-row cross-entropy `-sum(q * log softmax(s / tau))`: `(..., P)`, `(..., P)` -> `(...)`, in fp32."""
    log_probs = F.log_softmax(student_logits.float() / student_temperature, dim=-1)
    return -(teacher_probs * log_probs).sum(dim=-1)


def entropy_of_mean_prediction(logits, temperature):
    """Entropy in nats of the mean softmax prediction over the rows of `(..., P)` logits -> scalar, in fp32.

    MSN's mean-entropy maximisation ("me-max") subtracts it from the loss: it stays near log P only while the
    predictions of a batch spread over the prototypes, so a head that sends every input to the same prototypes is
    penalised, whatever the batch size. It reads one rank's rows, as KoLeo does.
    """
    return mean_entropy(F.softmax(logits.float().flatten(0, -2) / temperature, dim=-1).mean(dim=0))  # of (P,)


def prototypes_used(probs):
    """How many prototypes the rows of `(M, P)` probabilities use together -> scalar: the exponential of the
    entropy of their mean, 1 when every row puts its mass on the same prototype (a collapse that `mean_entropy`
    does not show), up to P when the batch spreads over all of them."""
    return mean_entropy(probs.mean(dim=0)).exp()


def mean_entropy(probs):
    """Mean entropy in nats of the rows of `(..., P)` probabilities -> scalar.

    For the teacher's targets this watches for collapse: it reaches log P when every target is uniform (the
    centering wins; the student then learns nothing) and 0 when every target is one-hot.
    """
    return -(probs * probs.clamp_min(1e-12).log()).sum(dim=-1).mean()


class TeacherCentering(nn.Module):
    """Turns teacher prototype logits into target probabilities, owning the centering state.

    `center`: softmax of `(logits - center) / tau`, with `center` an EMA of the batch-mean logits, updated by
    `update` after each training forward (DINO). `sinkhorn_knopp`: a few Sinkhorn-Knopp iterations that make
    the batch assignment to prototypes uniform (SwAV, DINOv2); it keeps no state. `none`: softmax of
    `logits / tau`, sharpening only (MSN, which keeps the predictions apart with `entropy_of_mean_prediction`).
    """

    def __init__(self, num_prototypes, centering="center", momentum=0.9, iterations=3):
        super().__init__()
        if centering not in CENTERINGS:
            raise ValueError(f"centering={centering!r} is not supported; allowed: {', '.join(map(repr, CENTERINGS))}")
        self.centering = centering
        self.momentum = momentum
        self.iterations = iterations
        self.register_buffer("center", torch.zeros(1, num_prototypes))

    def _apply(self, fn, recurse=True):
        # The center is an EMA like the teacher: keep it fp32 when an engine casts the module to bf16/fp16.
        super()._apply(fn, recurse)
        if self.center.dtype != torch.float32:
            self.center = self.center.float()
        return self

    @torch.no_grad()
    def forward(self, teacher_logits, temperature):
        """`(M, P)` logits -> `(M, P)` fp32 target probabilities, rows summing to 1."""
        logits = teacher_logits.float()
        if self.centering == "sinkhorn_knopp":
            return self._sinkhorn_knopp(logits, temperature)
        center = self.center if self.centering == "center" else 0.0
        return F.softmax((logits - center) / temperature, dim=-1)

    def _sinkhorn_knopp(self, logits, temperature):
        num_rows = _all_reduce(torch.tensor(float(logits.shape[0]), device=logits.device))
        shift = _all_reduce(logits.max().clone(), dist.ReduceOp.MAX)
        q = torch.exp((logits - shift) / temperature).T  # (P, M); a global shift leaves the result unchanged
        num_prototypes = q.shape[0]
        q /= _all_reduce(q.sum())
        for _ in range(self.iterations):
            q /= _all_reduce(q.sum(dim=1, keepdim=True))  # every prototype gets 1/P of the mass
            q /= num_prototypes
            q /= q.sum(dim=0, keepdim=True)  # every row gets 1/M of the mass
            q /= num_rows
        q *= num_rows
        return q.T  # (M, P)

    @torch.no_grad()
    def update(self, teacher_logits):
        """EMA of the batch-mean teacher logits `(M, P)` (over all ranks); nothing for the other centerings."""
        if self.centering != "center":
            return
        logits = teacher_logits.float()
        total = _all_reduce(logits.sum(dim=0, keepdim=True))
        count = _all_reduce(torch.tensor(float(logits.shape[0]), device=logits.device))
        self.center.mul_(self.momentum).add_(total / count, alpha=1.0 - self.momentum)


class DINOClsLoss(nn.Module):
    """DINO cross-entropy between student and teacher CLS prototype distributions across views."""

    def __init__(self, student_temperature=0.1):
        super().__init__()
        self.student_temperature = student_temperature

    def forward(self, student_logits, teacher_probs):
        """`student_logits` `(Vs, B, P)` (global views first), `teacher_probs` `(Vt, B, P)` -> scalar."""
        return average_over_view_pairs(
            student_logits,
            teacher_probs,
            lambda s, t: soft_cross_entropy(s, t, self.student_temperature).mean(),
        )


class IBOTPatchLoss(nn.Module):
    """iBOT cross-entropy between student and teacher prototype distributions at the target (masked) tokens."""

    def __init__(self, student_temperature=0.1):
        super().__init__()
        self.student_temperature = student_temperature

    def forward(self, student_logits, teacher_probs):
        """`(M, P)`, `(M, P)` over the M targets of the batch -> scalar mean."""
        return soft_cross_entropy(student_logits, teacher_probs, self.student_temperature).mean()


class KoLeoLoss(nn.Module):
    """KoLeo regulariser (DINOv2): `-mean log` of each feature's distance to its nearest neighbour in the batch.

    Features are L2-normalised first, so the loss rewards spreading them over the sphere. It reads the features
    of one rank's batch, as DINOv2 does.
    """

    def __init__(self, eps=1e-8):
        super().__init__()
        self.eps = eps

    def forward(self, features):
        """`(V, B, D)` features, B >= 2 -> scalar: the mean over the V groups (views) of each group's loss."""
        if features.shape[1] < 2:
            raise ValueError(f"KoLeo needs at least 2 clips per rank's batch, got {features.shape[1]}")
        features = F.normalize(features.float(), dim=-1)  # (V, B, D)
        with torch.no_grad():
            similarity = features @ features.transpose(1, 2)  # (V, B, B)
            similarity.diagonal(dim1=1, dim2=2).fill_(-2.0)  # never one's own neighbour
            neighbour = similarity.argmax(dim=-1)  # (V, B)
        nearest = features.gather(1, neighbour[..., None].expand_as(features))  # (V, B, D)
        distance = (features - nearest).norm(dim=-1)  # (V, B)
        return -(distance + self.eps).log().mean()


class FeatureRegressionLoss(nn.Module):
    """Regression of teacher features: `mse`, `cosine` (1 - cosine similarity) or `smooth_l1`, mean per row."""

    def __init__(self, kind="mse"):
        super().__init__()
        if kind not in REGRESSION_LOSSES:
            raise ValueError(f"loss_type={kind!r} is not a regression loss; allowed: {', '.join(REGRESSION_LOSSES)}")
        self.kind = kind

    def forward(self, prediction, target):
        """`(..., D)`, `(..., D)` -> scalar, computed in fp32."""
        prediction, target = prediction.float(), target.float()
        if self.kind == "mse":
            return F.mse_loss(prediction, target)
        if self.kind == "smooth_l1":
            return F.smooth_l1_loss(prediction, target)
        return (1.0 - F.cosine_similarity(prediction, target, dim=-1)).mean()
