"""LoRA fine-tuning of a transformer on LexGLUE UNFAIR-ToS, tracked end to end by MLflow.

The notebooks in `notebooks/` tell the story; this package holds the plumbing they call and
the classes that must be importable (`TransformerModule` for `mlflow.pytorch.load_checkpoint`).

The names below are imported on first use, so `import custom_module.<helper>` stays light: it
does not pull in torch, transformers or MLflow unless that helper needs them.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "PRESETS": "custom_module.config",
    "TrainConfig": "custom_module.config",
    "preset": "custom_module.config",
    "run_config": "custom_module.config",
    "TransformerModule": "custom_module.module",
    "train": "custom_module.train",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'custom_module' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
