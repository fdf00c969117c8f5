"""Notebook surroundings: quieter library output, and the versions and device a run used."""

from __future__ import annotations

import logging
import os
import platform
import warnings
from importlib.metadata import version

PACKAGES = (
    "torch",
    "pytorch-lightning",
    "transformers",
    "peft",
    "torchmetrics",
    "datasets",
    "mlflow",
)
# Each line is printed on every call by some library and teaches nothing in a notebook.
IGNORED_WARNINGS = (
    "IProgress not found",  # tqdm without ipywidgets
    ".*is_gradient_checkpointing.*",  # peft calling a deprecated transformers name
    ".*LeafSpec.*",  # Lightning calling a deprecated torch name
    # Lightning cannot tell that LengthSortedBatchSampler returns every row; it does (tested).
    "You are using a custom batch sampler",
)


def quiet_library_output() -> None:
    """Hide progress bars, tips and load reports, so notebook outputs show the results.

    Errors, and warnings other than the known ones above, still show.
    """
    for message in IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    import datasets
    import mlflow  # noqa: F401 (configures its logger on import)
    import pytorch_lightning  # noqa: F401 (sets INFO on its loggers on import)
    import transformers

    # Lightning sets INFO on its package loggers itself, so name them rather than a parent.
    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "mlflow"):
        logging.getLogger(name).setLevel(logging.WARNING)

    datasets.disable_progress_bars()  # e.g. "Generating train split" on a cold cache
    datasets.logging.set_verbosity_error()
    transformers.logging.set_verbosity_error()  # e.g. "classifier: newly initialized"
    transformers.logging.disable_progress_bar()


def environment_report() -> dict[str, str]:
    """Python, the key library versions, and the device torch would train on."""
    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    report = {"python": platform.python_version()}
    report.update({name: version(name) for name in PACKAGES})
    report["device"] = f"{device} ({torch.get_num_threads()} CPU threads)"
    return report
