"""What notebook 04 needs around `mlflow.pyfunc.log_model`: artifacts, signature, requirements,
the champion rule, and a local REST server.

`export_artifacts(run_id, merged, folder)` writes what the pyfunc loads, from the module the
notebook merged (`merge_and_unload()` in a cell of notebook 04): the merged encoder saved with
`save_pretrained`, the mean-pooling head's weights beside it, the tokenizer (for the ONNX
runtimes, also an ONNX copy of the whole forward pass, float or int8), and `settings.json`
(threshold, max_length, task, pooling, runtime); the notebook logs them with `pyfunc_model.py`
(models from code). `should_promote` decides whether the new version takes the alias
`champion`. `served(model_uri)` runs `mlflow models serve` on 127.0.0.1 for as long as a `with`
block lasts, and stops it, children included.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from importlib.metadata import version
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema
from peft import PeftModel
from safetensors.torch import save_file
from transformers import AutoTokenizer

from custom_module.config import run_config
from custom_module.evaluation import logged_report
from custom_module.model_source import resolve_model_path
from custom_module.module import TransformerModule
from custom_module.quantization import ONNX_FILES, export_int8, export_onnx
from data import LABEL_NAMES

CHAMPION = "champion"
# MLflow's default (60 s) is too short for a 5,000-clause request on a 2-core CPU (~40 s idle).
REQUEST_TIMEOUT_SECONDS = 300
PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")
# What pyfunc_model.py imports, pinned to this machine's versions (see `pip_requirements`).
SERVING_PACKAGES = ("mlflow", "torch", "transformers", "safetensors", "pandas", "numpy")
# How the pyfunc computes: PyTorch on the merged float model, or ONNX Runtime on an ONNX copy of
# it, in float (the same answers) or int8 (`custom_module/quantization.py`). Their throughput and
# test F1 side by side: `benchmarks/serving.py` (the README gives its last run). pyfunc_model.py
# has a batch size for each (tests/test_serving.py checks the two agree).
RUNTIMES = ("torch", "onnx", "onnx-int8")
HEAD_FILE = "head.safetensors"  # where pyfunc_model.py (which cannot import this) reads the head
INPUT_EXAMPLE = pd.DataFrame(
    {
        "text": [
            "we may change these terms at any time without notice .",
            "you can cancel your subscription from your account settings .",
        ]
    }
)


def pip_requirements(runtime: str = "torch") -> list[str]:
    """Exact versions without local tags: `torch==2.13.0`, not `torch==2.13.0+cpu`, which
    exists only on PyTorch's own index and would fail to install elsewhere."""
    packages = SERVING_PACKAGES + (("onnxruntime",) if runtime in ONNX_FILES else ())
    return [f"{name}=={version(name).split('+')[0]}" for name in packages]


def signature(task: str) -> ModelSignature:
    """One string column in (the `text` column, or a plain list of strings) and the answer out.

    The input column is left unnamed on purpose: MLflow refuses a plain list of strings for a
    named schema, and `pyfunc_model.clauses_from` checks the column name itself.
    """
    outputs = [ColSpec("string", "label"), ColSpec("double", "prob_unfair")]
    if task == "multilabel":
        outputs.append(ColSpec("string", "categories"))
        outputs += [ColSpec("double", f"prob_{name}") for name in LABEL_NAMES]
    return ModelSignature(inputs=Schema([ColSpec("string")]), outputs=Schema(outputs))


def export_classifier(merged: TransformerModule, folder: Path, runtime: str = "torch") -> None:
    """What the pyfunc loads, in one folder: the merged encoder (`save_pretrained`: its config
    and weights), the head, the tokenizer, and for the ONNX runtimes the ONNX model
    (`quantization.ONNX_FILES`).

    With mean pooling the head is this tutorial's own `nn.Linear`, not part of the `transformers`
    model: it is saved beside it as `head.safetensors`, and `pyfunc_model.py` pools and applies it
    itself. The blog's [CLS] head is inside the model and saved with it.
    """
    check_export(merged, runtime)
    folder.mkdir(parents=True, exist_ok=True)
    merged.model.save_pretrained(folder)
    if runtime == "onnx":
        export_onnx(merged, folder / ONNX_FILES[runtime])
    elif runtime == "onnx-int8":
        export_int8(merged, folder / ONNX_FILES[runtime])
    if merged.head is not None:
        save_file(
            {k: v.contiguous() for k, v in merged.head.state_dict().items()}, folder / HEAD_FILE
        )
    tokenizer_path = resolve_model_path(merged.hparams.model_name)
    AutoTokenizer.from_pretrained(tokenizer_path).save_pretrained(folder)


def check_export(merged: TransformerModule, runtime: str) -> None:
    """ValueError, before anything is written, for an unknown runtime or unmerged adapters."""
    if runtime not in RUNTIMES:
        raise ValueError(f"Unknown runtime {runtime!r}; choose one of {RUNTIMES}.")
    if isinstance(merged.model, PeftModel):
        raise ValueError(
            "The module still holds its LoRA adapters: merge them first, "
            "`module.model = module.model.merge_and_unload()` (notebook 04, section 4.3)."
        )


def export_artifacts(
    run_id: str, merged: TransformerModule, folder: str | Path, runtime: str = "torch"
) -> dict[str, str]:
    """The pyfunc's artifacts for an evaluated run: `classifier` (the folder of
    `export_classifier`) and `settings` (the served threshold, how to tokenize, the runtime).

    `merged` is the run's best epoch (`logged_report(run_id)["best_epoch"]`) with its adapters
    merged into the encoder; notebook 04 loads and merges it in a cell. `export_classifier`
    refuses an unknown runtime or unmerged adapters before anything is written.
    """
    report = logged_report(run_id)  # best epoch and threshold, from notebook 03
    config = run_config(run_id)
    folder = Path(folder)
    export_classifier(merged, folder / "classifier", runtime)
    settings = {
        "runtime": runtime,
        "threshold": report["threshold"],
        "max_length": config.max_length,
        "task": config.task,
        "pooling": config.pooling,
        "category_names": list(LABEL_NAMES),
        "model_name": config.model_name,
        "best_epoch": report["best_epoch"],
    }
    (folder / "settings.json").write_text(json.dumps(settings, indent=2))
    return {"classifier": str(folder / "classifier"), "settings": str(folder / "settings.json")}


def champion_version(registered_name: str) -> ModelVersion | None:
    """The version the alias `champion` points at, or None if there is none yet."""
    client = mlflow.MlflowClient()
    try:
        return client.get_model_version_by_alias(registered_name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        return None


def should_promote(run_id: str, registered_name: str) -> tuple[bool, str]:
    """Whether the model of `run_id` should become the champion, and why.

    A run trained on all the data beats one trained on a sample (a smoke or workshop run never
    displaces a full-data champion); between equals, the higher validation F1 at each model's
    served threshold wins, and a tie keeps the champion.
    """
    champion = champion_version(registered_name)
    if champion is None:
        return True, "there is no champion yet"
    if champion.run_id == run_id:
        return False, f"the champion (version {champion.version}) is this run's model already"
    challenger_full = run_config(run_id).sample_size is None
    champion_full = run_config(champion.run_id).sample_size is None
    if challenger_full != champion_full:
        return challenger_full, (
            "the new model was trained on all the data and the champion on a sample"
            if challenger_full
            else "the new model was trained on a sample and the champion on all the data"
        )
    new = logged_report(run_id)["validation"]["f1"]
    old = logged_report(champion.run_id).get("validation", {}).get("f1")
    if old is None:  # evaluated before reports held validation scores
        return True, f"the champion (version {champion.version}) has no validation F1 to compare"
    verdict = "beats" if new > old else "does not beat"
    return new > old, (
        f"its validation F1 {new:.4f} {verdict} the champion's {old:.4f} "
        f"(version {champion.version})"
    )


def champion_uri(registered_name: str) -> str:
    return f"models:/{registered_name}@{CHAMPION}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def served(
    model_uri: str,
    port: int | None = None,
    startup_seconds: float = 180,
    request_timeout_seconds: int = REQUEST_TIMEOUT_SECONDS,
) -> Iterator[str]:
    """`mlflow models serve` on 127.0.0.1 while the block runs; yields the base URL.

    The server runs in its own process group, so stopping it stops its uvicorn workers too.
    """
    port = port or free_port()
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri]
    command += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"]
    command += ["-t", str(request_timeout_seconds)]
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": mlflow.get_tracking_uri(),
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # keeps the log's end readable
        # MLflow starts `uvicorn` by name: find it beside this Python even in a venv that was
        # not activated (`make`, papermill, a Jupyter kernel).
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    url = f"http://127.0.0.1:{port}"
    # The server's own log goes to a file, so notebooks stay readable; errors quote its end.
    with tempfile.NamedTemporaryFile("w+", suffix=".log") as log:
        server = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_until_ready(url, server, startup_seconds, Path(log.name))
            yield url
        finally:
            stop_process_group(server)


def stop_process_group(server: subprocess.Popen) -> None:
    """SIGTERM the server and its workers, SIGKILL them if they are still there after 30 s."""
    with suppress(ProcessLookupError):  # the group is gone when the server failed to start
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def wait_until_ready(url: str, server: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(
                f"`mlflow models serve` exited with code {server.returncode}:\n"
                + log.read_text()[-3000:]
            )
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"The model server at {url} did not answer /ping within {timeout:.0f} s.")


def post(url: str, payload: dict) -> tuple[int, dict]:
    """POST a JSON payload to `/invocations`; (HTTP status, decoded JSON answer).

    A non-JSON error body (e.g. the server's timeout text) comes back as `{"message": body}`.
    """
    request = urllib.request.Request(
        f"{url}/invocations",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        body = error.read().decode(errors="replace")
        try:
            return error.code, json.loads(body)
        except json.JSONDecodeError:
            return error.code, {"message": body}
