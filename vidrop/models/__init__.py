"""HF-style ViDROP model: configuration and modeling (importable as Hub remote code)."""

from .configuration_vidrop import PRESETS, VidropConfig
from .modeling_vidrop import (
    VidropForVideoClassification,
    VidropModel,
    VidropModelOutput,
    VidropPreTrainedModel,
)

__all__ = [
    "PRESETS",
    "VidropConfig",
    "VidropForVideoClassification",
    "VidropModel",
    "VidropModelOutput",
    "VidropPreTrainedModel",
]
