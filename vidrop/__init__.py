"""ViDROP: self-supervised pre-training of sparse video transformers.

Importing `vidrop` registers `VidropConfig` and the ViDROP models with the transformers Auto classes, so
`AutoConfig`, `AutoModel` and `AutoModelForVideoClassification` load ViDROP folders.
"""

from transformers import AutoConfig, AutoModel, AutoModelForVideoClassification

from . import models
from .models import *  # noqa: F401,F403  (the public model API)
from .models import VidropConfig, VidropForVideoClassification, VidropModel

__all__ = list(models.__all__)

AutoConfig.register(VidropConfig.model_type, VidropConfig, exist_ok=True)
AutoModel.register(VidropConfig, VidropModel, exist_ok=True)
AutoModelForVideoClassification.register(VidropConfig, VidropForVideoClassification, exist_ok=True)
