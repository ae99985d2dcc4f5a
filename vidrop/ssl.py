"""The ViDROP self-distillation objective: student, EMA teacher, heads and losses -> `(loss, metrics)`.

A batch (made by `vidrop.data.collate.SSLCollator`) holds `G` global views and `S` small crops per clip with
their token plans. The teacher encodes the global views' kept tokens unmasked (or all tokens, with
`teacher_sees_dropped_tokens`); the student encodes the global views with masked kept tokens and the small
crops' kept tokens. The CLS loss pairs every student view with every other global teacher view; the
per-patch loss is computed at every masked kept token of the global views.
"""

import copy

import torch
from torch import nn

from .heads import DINOHead, FeaturePredictor
from .losses import (
    DINOClsLoss,
    FeatureRegressionLoss,
    IBOTPatchLoss,
    KoLeoLoss,
    TeacherCentering,
    average_over_view_pairs,
    entropy_of_mean_prediction,
    mean_entropy,
    prototypes_used,
)
from .models import VidropConfig, VidropModel


def _views_first(features, batch_size):
    """`(B * V, ...)` sample-major -> `(V, B, ...)` view-major."""
    return features.reshape(batch_size, -1, *features.shape[1:]).transpose(0, 1)


class SelfDistillation(nn.Module):
    """Student `VidropModel` + heads trained against an EMA teacher.

    The teacher (backbone and, for `dino_ibot`, heads) is an fp32 copy that is always in eval mode and never
    receives gradients. It is deliberately not a registered submodule: an engine that wraps this module
    (DeepSpeed) must neither cast it to bf16 nor shard it, and `state_dict()` holds only what is trained.
    Read it as `self.teacher`; `update_teacher(momentum)` moves it towards the student.

    Args:
        config: the `VidropConfig` (architecture and SSL toggles).
        backbone: an existing `VidropModel` to train (for example one loaded with `from_pretrained`);
            a fresh one is built from `config` otherwise.
    """

    def __init__(self, config: VidropConfig, backbone: VidropModel | None = None):
        super().__init__()
        self.config = config
        backbone = backbone if backbone is not None else VidropModel(config)
        if config.loss_type == "dino_ibot":
            cls_head = DINOHead(
                config.hidden_size, config.num_prototypes, config.head_hidden_size, config.head_bottleneck_size
            )
            patch_head = DINOHead(
                config.hidden_size, config.num_patch_prototypes, config.head_hidden_size, config.head_bottleneck_size
            )
            teacher_parts = ("backbone", "cls_head", "patch_head")
            self.cls_centering = TeacherCentering(
                config.num_prototypes, config.centering, config.center_momentum, config.sinkhorn_iterations
            )
            self.patch_centering = TeacherCentering(
                config.num_patch_prototypes, config.centering, config.center_momentum, config.sinkhorn_iterations
            )
            self.cls_loss = DINOClsLoss(config.student_temperature)
            self.patch_loss = IBOTPatchLoss(config.student_temperature)
        else:  # regression of the teacher's features through predictors
            cls_head = FeaturePredictor(config.hidden_size, config.head_hidden_size)
            patch_head = FeaturePredictor(config.hidden_size, config.head_hidden_size)
            teacher_parts = ("backbone",)
            self.regression_loss = FeatureRegressionLoss(config.loss_type)
        self.koleo_loss = KoLeoLoss()
        self.student = nn.ModuleDict({"backbone": backbone, "cls_head": cls_head, "patch_head": patch_head})
        teacher = nn.ModuleDict({name: copy.deepcopy(self.student[name]) for name in teacher_parts})
        teacher.float().eval().requires_grad_(False)
        object.__setattr__(self, "teacher", teacher)  # kept out of the module tree, see the class docstring

    # ----------------------------------------------------------------------------------------------------- teacher

    def _teacher_on(self, device):
        if next(self.teacher.parameters()).device != device:
            self.teacher.to(device)
        return self.teacher

    @torch.no_grad()
    def update_teacher(self, momentum):
        """EMA step `teacher = momentum * teacher + (1 - momentum) * student`, in fp32, for one process.

        Under ZeRO-1/2 every rank holds full student parameters after a step, so this is exact there too; the
        ZeRO-3 variant gathers the student's parameters first (see `vidrop.training`).
        """
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum={momentum!r} is out of range; allowed: [0, 1]")
        student = dict(self.student.named_parameters())
        teacher = self._teacher_on(next(iter(student.values())).device)
        for name, teacher_param in teacher.named_parameters():
            teacher_param.mul_(momentum).add_(student[name].detach().float(), alpha=1.0 - momentum)

    def _encode_teacher(self, pixel_values, keep_indices):
        """Teacher features of the global views: CLS `(B*G, D)` and kept tokens `(B*G, K, D)`, fp32."""
        teacher = self._teacher_on(pixel_values.device)
        student_dtype = self.student["backbone"].embeddings.patch_embeddings.projection.weight.dtype
        autocast = torch.autocast(
            pixel_values.device.type, dtype=student_dtype, enabled=student_dtype != torch.float32
        )
        with torch.no_grad(), autocast:  # fp32 weights, the student's compute precision
            if self.config.teacher_sees_dropped_tokens:
                hidden = teacher["backbone"](pixel_values).last_hidden_state  # (B*G, 1 + N, D)
                cls, tokens = self._split_cls(hidden)
                tokens = tokens.gather(1, keep_indices[..., None].expand(-1, -1, tokens.shape[-1]))
            else:
                hidden = teacher["backbone"](pixel_values, keep_indices).last_hidden_state  # (B*G, 1 + K, D)
                cls, tokens = self._split_cls(hidden)
        return cls.float(), tokens.float()

    def _split_cls(self, hidden):
        """`(B, [1 +] K, D)` -> CLS (or mean token) `(B, D)` and tokens `(B, K, D)`."""
        if self.config.use_cls_token:
            return hidden[:, 0], hidden[:, 1:]
        return hidden.mean(dim=1), hidden

    # ----------------------------------------------------------------------------------------------------- forward

    def forward(self, batch, teacher_temperature=None):
        """Compute the self-distillation loss of a batch; never calls `backward`.

        Args:
            batch: a dict with `global_pixel_values` `(B, G, T, C, H, W)`, `global_keep_indices` `(B, G, K)`,
                `global_mask` `(B, G, K)` bool and, with small crops, `small_pixel_values` `(B, S, T, C, h, w)`
                and `small_keep_indices` `(B, S, Ks)`.
            teacher_temperature: the scheduled teacher temperature; `config.teacher_temperature` if None.

        Returns:
            `(loss, metrics)`: the scalar total loss and a dict of detached scalars (`loss`, `cls_loss`,
            `patch_loss`, `kept_tokens_per_clip`: tokens the student encodes per clip over all its views,
            `masked_tokens_per_clip`: per-patch targets per clip; with the prototype losses also
            `teacher_cls_entropy` and `teacher_patch_entropy`, see `_prototype_losses`).
        """
        global_views = batch["global_pixel_values"]
        batch_size = global_views.shape[0]
        pixel_values = global_views.flatten(0, 1)  # (B*G, T, C, H, W)
        keep_indices = batch["global_keep_indices"].flatten(0, 1)  # (B*G, K)
        mask = batch["global_mask"].flatten(0, 1)  # (B*G, K)
        teacher_cls, teacher_tokens = self._encode_teacher(pixel_values, keep_indices)

        backbone = self.student["backbone"]
        kept_tokens = keep_indices.numel()
        student_cls, student_tokens = self._split_cls(backbone(pixel_values, keep_indices, mask).last_hidden_state)
        student_cls = _views_first(student_cls, batch_size)  # (G, B, D)
        koleo_loss = self.koleo_loss(student_cls) if self.config.koleo_loss_weight > 0 else student_cls.new_zeros(())
        small_views = batch.get("small_pixel_values")
        if small_views is not None and small_views.shape[1] > 0:
            small_keep_indices = batch["small_keep_indices"].flatten(0, 1)  # (B*S, Ks)
            small_hidden = backbone(small_views.flatten(0, 1), small_keep_indices)
            small_cls, _ = self._split_cls(small_hidden.last_hidden_state)
            student_cls = torch.cat([student_cls, _views_first(small_cls, batch_size)])  # (G + S, B, D)
            kept_tokens += small_keep_indices.numel()

        teacher_cls = _views_first(teacher_cls, batch_size)  # (G, B, D)
        student_targets, teacher_targets = student_tokens[mask], teacher_tokens[mask]  # (M, D) each
        temperature = self.config.teacher_temperature if teacher_temperature is None else teacher_temperature
        entropies = {}
        spread = student_cls.new_zeros(())  # entropy of the mean student prediction, for mean_entropy_weight
        if self.config.loss_type == "dino_ibot":
            cls_loss, patch_loss, spread = self._prototype_losses(
                student_cls, teacher_cls, student_targets, teacher_targets, temperature, entropies
            )
        else:
            cls_loss = average_over_view_pairs(self.student["cls_head"](student_cls), teacher_cls, self.regression_loss)
            patch_loss = self._patch_or_zero(
                student_targets, lambda s: self.regression_loss(self.student["patch_head"](s), teacher_targets)
            )
        loss = (
            self.config.cls_loss_weight * cls_loss
            + self.config.patch_loss_weight * patch_loss
            + self.config.koleo_loss_weight * koleo_loss
            - self.config.mean_entropy_weight * spread
        )
        metrics = {
            "loss": loss.detach(),
            "cls_loss": cls_loss.detach(),
            "patch_loss": patch_loss.detach(),
            "koleo_loss": koleo_loss.detach(),
            "student_mean_entropy": spread.detach(),
            "kept_tokens_per_clip": torch.tensor(float(kept_tokens) / batch_size),
            "masked_tokens_per_clip": torch.tensor(student_targets.shape[0] / batch_size),
            **entropies,
        }
        return loss, metrics

    def _prototype_losses(self, student_cls, teacher_cls, student_targets, teacher_targets, temperature, entropies):
        """DINO CLS loss over view pairs and iBOT loss at the targets; updates the centers when training.

        Returns `(cls_loss, patch_loss, spread)`: `spread` is the entropy of the student's mean prediction, summed
        over the two heads (zero unless `mean_entropy_weight` > 0). Puts two watches of the teacher's targets in
        `entropies`, for the CLS head and (when there are targets) the per-patch head: `teacher_*_entropy`, their
        mean entropy (log P: every target uniform, DINO's uniform collapse), and `teacher_*_prototypes_used`
        over the rank's batch (1: every target on the same prototype, the other collapse).
        """
        with torch.no_grad():
            teacher_cls_logits = self.teacher["cls_head"](teacher_cls)  # (G, B, P)
            teacher_cls_probs = self.cls_centering(teacher_cls_logits.flatten(0, 1), temperature)
            entropies["teacher_cls_entropy"] = mean_entropy(teacher_cls_probs)
            entropies["teacher_cls_prototypes_used"] = prototypes_used(teacher_cls_probs)
        student_cls_logits = self.student["cls_head"](student_cls)  # (G + S, B, P)
        cls_loss = self.cls_loss(student_cls_logits, teacher_cls_probs.view_as(teacher_cls_logits))
        if self.training:
            self.cls_centering.update(teacher_cls_logits.flatten(0, 1))
        if student_targets.shape[0] == 0:  # mask ratio 0, on every rank alike: see `_patch_or_zero`
            return cls_loss, student_targets.sum() * 0.0, self._spread(student_cls_logits)
        patch_loss, patch_spread = self._ibot_loss(student_targets, teacher_targets, temperature, entropies)
        return cls_loss, patch_loss, self._spread(student_cls_logits) + patch_spread

    def _spread(self, student_logits):
        """Entropy of the mean student prediction of `(..., P)` logits, or a zero when `mean_entropy_weight` is 0."""
        if self.config.mean_entropy_weight == 0:
            return student_logits.new_zeros(())
        return entropy_of_mean_prediction(student_logits, self.config.student_temperature)

    def _ibot_loss(self, student_targets, teacher_targets, temperature, entropies):
        """iBOT loss at the `(M, D)` targets and the spread of the student's predictions there; updates the patch
        center when training."""
        with torch.no_grad():
            teacher_logits = self.teacher["patch_head"](teacher_targets)  # (M, Pp)
            teacher_probs = self.patch_centering(teacher_logits, temperature)
            entropies["teacher_patch_entropy"] = mean_entropy(teacher_probs)
            entropies["teacher_patch_prototypes_used"] = prototypes_used(teacher_probs)
        student_logits = self.student["patch_head"](student_targets)  # (M, Pp)
        if self.training:
            self.patch_centering.update(teacher_logits)
        return self.patch_loss(student_logits, teacher_probs), self._spread(student_logits)

    def _patch_or_zero(self, student_targets, loss_fn):
        """`loss_fn(student_targets)`, or a zero that keeps the graph when there is no target (mask ratio 0).

        The number of targets is the same on every rank (same batch size, K and mask ratio), so skipping is
        collective-safe.
        """
        if student_targets.shape[0] == 0:
            return student_targets.sum() * 0.0
        return loss_fn(student_targets)
