"""The versions and device a notebook ran with, for its last cell (reproducibility)."""

from __future__ import annotations

import platform
from importlib.metadata import version

import torch

PACKAGES = (
    "torch",
    "pytorch-lightning",
    "transformers",
    "peft",
    "torchmetrics",
    "datasets",
    "mlflow",
)


def environment_report() -> dict[str, str]:
    """Python, the key library versions, and the device torch would train on."""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    report = {"python": platform.python_version()}
    report.update({name: version(name) for name in PACKAGES})
    report["device"] = f"{device} ({torch.get_num_threads()} CPU threads)"
    return report
