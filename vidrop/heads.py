"""Projection heads of the self-distillation objective (they live outside the exported encoder)."""

import torch
import torch.nn.functional as F
from torch import nn


def _init_linear(module, std=0.02):
    nn.init.trunc_normal_(module.weight, std=std)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def _mlp(in_dim, hidden_dim, out_dim, num_layers):
    """`num_layers` linear layers with GELU between them."""
    dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
    layers = []
    for i in range(num_layers):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < num_layers - 1:
            layers.append(nn.GELU())
    mlp = nn.Sequential(*layers)
    for layer in mlp:
        if isinstance(layer, nn.Linear):
            _init_linear(layer)
    return mlp


class DINOHead(nn.Module):
    """MLP -> bottleneck -> L2 normalisation -> cosine similarity to learned prototypes (DINO / iBOT head).

    The prototypes are normalised in every forward pass (weight normalisation with gain fixed at 1), so the
    logits lie in [-1, 1] before the temperature; no parametrisation hook is needed, which keeps the head a
    plain set of parameters for ZeRO sharding and EMA.
    """

    def __init__(self, in_dim, num_prototypes, hidden_size=2048, bottleneck_size=256, num_layers=3):
        super().__init__()
        self.mlp = _mlp(in_dim, hidden_size, bottleneck_size, num_layers)
        self.prototypes = nn.Parameter(torch.empty(num_prototypes, bottleneck_size))
        nn.init.trunc_normal_(self.prototypes, std=0.02)

    def forward(self, features):
        """`(..., D)` -> prototype logits `(..., P)`."""
        bottleneck = F.normalize(self.mlp(features), dim=-1, eps=1e-6)
        return F.linear(bottleneck, F.normalize(self.prototypes, dim=-1, eps=1e-6))


class FeaturePredictor(nn.Module):
    """Two-layer MLP predicting the teacher's `(..., D)` features from the student's (regression losses)."""

    def __init__(self, hidden_size, predictor_hidden_size=2048):
        super().__init__()
        self.mlp = _mlp(hidden_size, predictor_hidden_size, hidden_size, num_layers=2)

    def forward(self, features):
        """`(..., D)` -> `(..., D)`."""
        return self.mlp(features)
