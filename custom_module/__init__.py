"""LoRA fine-tuning of a transformer on LexGLUE UNFAIR-ToS, tracked end to end by MLflow.

The notebooks in `notebooks/` tell the story; this package holds the code they call.
"""

from custom_module.config import PRESETS, TrainConfig, preset
from custom_module.module import TransformerModule
from custom_module.train import train

__all__ = ["PRESETS", "TrainConfig", "TransformerModule", "preset", "train"]
