"""HF-style ViDROP model: configuration and modeling (importable as Hub remote code)."""

from .configuration_vidrop import ARCHITECTURE_FIELDS, PRESETS, VidropConfig
from .modeling_vidrop import (
    VidropForVideoClassification,
    VidropModel,
    VidropModelOutput,
    VidropPreTrainedModel,
)

__all__ = [
    "ARCHITECTURE_FIELDS",
    "PRESETS",
    "VidropConfig",
    "VidropForVideoClassification",
    "VidropModel",
    "VidropModelOutput",
    "VidropPreTrainedModel",
]
