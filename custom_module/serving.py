"""What notebook 04 needs around `mlflow.pyfunc.log_model` of `pyfunc_model.py` (models from code,
which cannot import this package): artifacts, signature, requirements, champion rule, a server."""

import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema
from peft import PeftModel
from safetensors.torch import save_file
from sklearn.metrics import f1_score
from transformers import AutoTokenizer

from custom_module.config import EXAMPLE_CLAUSES, resolve_model_path
from custom_module.evaluation import logged_report
from custom_module.module import TransformerModule
from custom_module.processes import free_port, serving
from custom_module.pyfunc_model import BATCH_SIZES, HEAD_FILE, ONNX_FILES
from custom_module.tracking import CHAMPION, run_config
from data import LABEL_NAMES

# MLflow's default (60 s) is too short for a 5,000-clause request on a 2-core CPU (~40 s idle).
REQUEST_TIMEOUT_SECONDS = 300
PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")
# What pyfunc_model.py imports per runtime, pinned to this machine's versions (`pip_requirements`):
# the ONNX runtimes compute in numpy, so their environments leave out torch and safetensors.
SERVING_PACKAGES = {
    "torch": ("mlflow", "torch", "transformers", "safetensors", "pandas", "numpy"),
    "onnx": ("mlflow", "transformers", "pandas", "numpy", "onnxruntime"),
}
RUNTIMES = tuple(BATCH_SIZES)  # how the pyfunc computes: torch, onnx, onnx-int8 (docs/serving.md)
INPUT_EXAMPLE = pd.DataFrame({"text": list(EXAMPLE_CLAUSES)})


def pip_requirements(runtime: str = "torch") -> list[str]:
    """Exact versions less local tags: `torch==2.13.0+cpu` exists only on PyTorch's own index."""
    packages = SERVING_PACKAGES["onnx" if runtime in ONNX_FILES else "torch"]
    return [f"{name}=={version(name).split('+')[0]}" for name in packages]


def signature(task: str) -> ModelSignature:
    """One string column in and the answer out. The input is unnamed: MLflow refuses a plain list
    of strings for a named schema, and `pyfunc_model.clauses_from` checks the name itself."""
    outputs = [ColSpec("string", "label"), ColSpec("double", "prob_unfair")]
    if task == "multilabel":
        outputs.append(ColSpec("string", "categories"))
        outputs += [ColSpec("double", f"prob_{name}") for name in LABEL_NAMES]
    return ModelSignature(inputs=Schema([ColSpec("string")]), outputs=Schema(outputs))


def export_classifier(merged: TransformerModule, folder: Path, runtime: str = "torch") -> None:
    """What the pyfunc loads, in one folder: merged encoder, our head (`HEAD_FILE`, outside the
    `transformers` model), tokenizer, ONNX model (ONNX runtimes); checks come before any write."""
    if runtime not in RUNTIMES:
        raise ValueError(f"Unknown runtime {runtime!r}; choose one of {RUNTIMES}.")
    if isinstance(merged.model, PeftModel):
        raise ValueError(
            "The module still holds its LoRA adapters: merge them first, "
            "`module.model = module.model.merge_and_unload()` (notebook 04, section 4.3)."
        )
    folder.mkdir(parents=True, exist_ok=True)
    merged.model.save_pretrained(folder)
    if runtime in ONNX_FILES:
        try:  # the extra `onnx`, which a slim install (Databricks) may leave out
            from custom_module.onnx_export import export_int8, export_onnx
        except ModuleNotFoundError as missing:
            raise ModuleNotFoundError(
                f"runtime={runtime!r} needs {missing.name}: pip install "
                "'lexglue-lora-mlflow[onnx]' (or -e '.[onnx]')"
            ) from None
        (export_onnx if runtime == "onnx" else export_int8)(merged, folder / ONNX_FILES[runtime])
    if merged.head is not None:
        head = {k: v.contiguous() for k, v in merged.head.state_dict().items()}
        save_file(head, folder / HEAD_FILE)
    tokenizer_path = resolve_model_path(merged.hparams.pretrained_model)
    AutoTokenizer.from_pretrained(tokenizer_path).save_pretrained(folder)


def export_artifacts(
    run_id: str, merged: TransformerModule, folder: str | Path, runtime: str = "torch"
) -> dict[str, str]:
    """The pyfunc's artifacts for an evaluated run: `classifier` (see `export_classifier`) and
    `settings` (threshold, tokenization, runtime); `merged` is its best epoch, adapters merged."""
    report = logged_report(run_id)  # best epoch and threshold, from notebook 03
    config = run_config(run_id)
    folder = Path(folder)
    export_classifier(merged, folder / "classifier", runtime)
    settings = {"runtime": runtime, "threshold": report["threshold"], "category_names": LABEL_NAMES}
    settings |= {name: getattr(config, name) for name in ("max_length", "task", "pooling")}
    settings |= {"pretrained_model": config.pretrained_model, "best_epoch": report["best_epoch"]}
    settings["prior_shift"] = merged.hparams.get("prior_shift")  # notebook 03, section 3.4
    (folder / "settings.json").write_text(json.dumps(settings, indent=2))
    return {"classifier": str(folder / "classifier"), "settings": str(folder / "settings.json")}


def champion_version(registered_name: str) -> ModelVersion | None:
    """The version the alias `champion` points at, or None if there is none yet."""
    try:
        return mlflow.MlflowClient().get_model_version_by_alias(registered_name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        return None


def served_f1(model_uri: str, texts: list[str], is_unfair: np.ndarray) -> float:
    """F1 of a logged pyfunc's own labels (at the threshold it serves) on these clauses."""
    answers = mlflow.pyfunc.load_model(model_uri).predict(pd.DataFrame({"text": texts}))
    return float(f1_score(is_unfair, answers["label"].eq("unfair"), zero_division=0))


def should_promote(
    version: ModelVersion, texts: list[str], is_unfair: np.ndarray
) -> tuple[bool, str]:
    """Whether the registered `version` should be the champion, and why: its served F1 against
    the champion's on the same clauses (notebook 04: every validation clause); a tie keeps it."""
    champion = champion_version(version.name)
    if champion is not None and champion.run_id == version.run_id:
        return False, f"the champion (version {champion.version}) is this run's model already"
    new = served_f1(f"models:/{version.name}/{version.version}", texts, is_unfair)
    where = f"{len(texts):,} clauses, {np.mean(is_unfair):.0%} unfair"
    if champion is None:
        return True, f"there is no champion yet; its F1 is {new:.4f} on {where}"
    old = served_f1(f"models:/{version.name}/{champion.version}", texts, is_unfair)
    verdict = "beats" if new > old else "does not beat"
    return new > old, (
        f"its F1 {new:.4f} {verdict} the champion's {old:.4f} (version {champion.version}) "
        f"on the same {where}"
    )


@contextmanager
def served(model_uri: str) -> Iterator[str]:
    """`mlflow models serve` on 127.0.0.1 while the block runs; yields the base URL. Its own
    process group, so stopping it stops its uvicorn workers too."""
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri]
    command += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"]
    command += ["-t", str(REQUEST_TIMEOUT_SECONDS)]
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": mlflow.get_tracking_uri(),
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # keeps the log's end readable
        # MLflow starts `uvicorn` by name: find it beside this Python in an unactivated venv.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    with serving(command, f"http://127.0.0.1:{port}/ping", env):
        yield f"http://127.0.0.1:{port}"


def post(url: str, payload: dict) -> tuple[int, dict]:
    """POST a JSON payload to `/invocations`; (HTTP status, decoded JSON answer), a non-JSON
    error body (e.g. the server's timeout text) as `{"message": body}`."""
    data, headers = json.dumps(payload).encode(), {"Content-Type": "application/json"}
    request = urllib.request.Request(f"{url}/invocations", data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        body = error.read().decode(errors="replace")
        try:
            return error.code, json.loads(body)
        except json.JSONDecodeError:
            return error.code, {"message": body}
