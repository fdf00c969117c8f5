"""What the notebooks share around their lessons: quiet output, versions, source where it is taught,
results for the tests. No training stack at module level, so first and last cells stay cheap."""

import inspect
import json
import logging
import os
import platform
import textwrap
import warnings
from importlib.metadata import version
from pathlib import Path

from IPython import get_ipython
from IPython.display import Code, display

PACKAGES = ("torch", "pytorch-lightning", "transformers", "peft", "torchmetrics", "datasets")
PACKAGES += ("mlflow",)
RESULTS_MARKER = "tutorial_results"
# Each line is printed on every call by some library and teaches nothing in a notebook.
IGNORED_WARNINGS = (
    "IProgress not found",  # tqdm without ipywidgets
    ".*is_gradient_checkpointing.*",  # peft calling a deprecated transformers name
    ".*LeafSpec.*",  # Lightning calling a deprecated torch name
    # Lightning cannot tell that LengthSortedBatchSampler returns every row; it does (tested).
    "You are using a custom batch sampler",
)


def in_ipython() -> bool:
    """True inside an IPython kernel or shell (Jupyter, papermill, nbval), where displays exist."""
    return get_ipython() is not None


def quiet_library_output() -> None:
    """Hide progress bars, tips and load reports (not errors or other warnings) in notebooks."""
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
    report = {"python": platform.python_version()} | {name: version(name) for name in PACKAGES}
    report["device"] = f"{device} ({torch.get_num_threads()} CPU threads)"
    return report


def show_source(*objects) -> Code:
    """The source of functions, methods, classes or modules, syntax-highlighted."""
    parts = [textwrap.dedent(inspect.getsource(item)).rstrip() for item in objects]
    return Code("\n\n".join(parts), language="python")


def record_results(**values) -> None:
    """Store `values` in the notebook's output for `read_results`, shown as one line naming them."""
    json.dumps(values)  # fail here, in the notebook, on a value that JSON cannot hold
    text = f"recorded for the tests: {', '.join(values)}"
    bundle = {"application/json": values, "text/plain": text}
    display(bundle, raw=True, metadata={RESULTS_MARKER: True})


def read_results(notebook_path: str | Path) -> dict:
    """The values the executed notebook recorded; LookupError if it recorded none."""
    notebook = json.loads(Path(notebook_path).read_text())
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            if output.get("metadata", {}).get(RESULTS_MARKER):
                return output["data"]["application/json"]
    raise LookupError(f"{notebook_path} recorded no results: did it run to its last cell?")
