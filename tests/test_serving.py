"""Notebook 04's pyfunc: registered as champion, predicts like the module, served over REST."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import mlflow
import numpy as np
import onnx
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from run_layout import TEST_MODEL_NAME
from sklearn.metrics import f1_score
from transformers import AutoConfig

from custom_module import onnx_export, processes, serving
from custom_module.checkpoints import load_epoch, tagged_best_epoch
from custom_module.evaluation import logged_report, predict
from custom_module.pyfunc_model import BATCH_SIZES
from custom_module.serving import (
    INPUT_EXAMPLE,
    PYFUNC_FILE,
    champion_version,
    export_artifacts,
    pip_requirements,
    post,
    served,
    should_promote,
    signature,
)
from custom_module.tracking import run_config
from data import LexGlueDataModule

REPO_ROOT = Path(__file__).resolve().parents[1]
CHAMPION_URI = f"models:/{TEST_MODEL_NAME}@champion"


@pytest.fixture(scope="module")
def logged(evaluated_and_served):
    """What notebook 04 recorded when it logged, registered and promoted the smoke run's model."""
    return evaluated_and_served["04"]


@pytest.fixture(scope="module")
def pyfunc(logged):
    return mlflow.pyfunc.load_model(CHAMPION_URI)


@pytest.fixture(scope="module")
def datamodule(smoke_run_id) -> LexGlueDataModule:
    datamodule = LexGlueDataModule(run_config(smoke_run_id))
    datamodule.setup()
    return datamodule


@pytest.fixture(scope="module")
def clauses(datamodule) -> list[str]:
    return datamodule.texts["test"][:40]


@pytest.fixture(scope="module")
def expected(smoke_run_id, logged, datamodule, clauses) -> pd.DataFrame:
    """What the in-process module says at the run's best epoch and served threshold."""
    module = load_epoch(smoke_run_id, tagged_best_epoch(smoke_run_id))
    threshold = logged_report(smoke_run_id)["threshold"]
    prob_unfair = predict(module, datamodule.texts_dataloader(clauses)).max(axis=1)
    label = np.where(prob_unfair > threshold, "unfair", "fair")
    return pd.DataFrame({"text": clauses, "prob_unfair": prob_unfair.round(4), "label": label})


@pytest.fixture(scope="module")
def merged(smoke_run_id, logged):
    """The run's best epoch with its adapters merged, as notebook 04 merges it."""
    module = load_epoch(smoke_run_id, tagged_best_epoch(smoke_run_id))
    module.model = module.model.merge_and_unload()
    return module


def assert_same_predictions(answer: pd.DataFrame, expected: pd.DataFrame) -> None:
    # Merging LoRA into the encoder reorders float32 sums: equal up to rounding.
    assert answer["prob_unfair"].to_numpy() == pytest.approx(expected["prob_unfair"], abs=1e-4)
    assert answer["label"].tolist() == expected["label"].tolist()


def test_first_model_becomes_champion_of_the_training_run(logged, smoke_run_id):
    assert logged["promoted"] is True
    champion = champion_version(TEST_MODEL_NAME)
    assert int(champion.version) == logged["version"]
    assert champion.run_id == smoke_run_id


def test_the_same_run_again_does_not_move_the_champion(logged, smoke_run_id):
    version = mlflow.MlflowClient().get_model_version(TEST_MODEL_NAME, str(logged["version"]))
    assert should_promote(version, [], np.array([]))[0] is False  # decided before any scoring


def test_served_f1_scores_the_pyfunc_at_its_own_threshold(logged, clauses, expected, datamodule):
    truth = datamodule.categories["test"][: len(clauses)].any(axis=1)
    flagged = expected["label"].eq("unfair")
    assert serving.served_f1(CHAMPION_URI, clauses, truth) == pytest.approx(
        f1_score(truth, flagged, zero_division=0)
    )


def test_an_equal_model_of_another_run_does_not_displace_the_champion(logged, clauses, datamodule):
    """The champion's own model, registered again from a run of its own: the two answer the same
    clauses alike, and a tie keeps the champion."""
    client = mlflow.MlflowClient()
    champion = champion_version(TEST_MODEL_NAME)
    with mlflow.start_run(run_name="challenger") as run:
        pass
    challenger = client.create_model_version(
        TEST_MODEL_NAME, champion.source, run_id=run.info.run_id
    )
    truth = datamodule.categories["test"][: len(clauses)].any(axis=1)
    assert should_promote(challenger, clauses, truth)[0] is False
    assert champion_version(TEST_MODEL_NAME).version == champion.version


def test_the_higher_f1_on_the_same_clauses_wins(logged, monkeypatch):
    champion = champion_version(TEST_MODEL_NAME)
    challenger = mlflow.entities.model_registry.ModelVersion(
        TEST_MODEL_NAME, "99", 0, run_id="1" * 32
    )
    scores = {f"models:/{TEST_MODEL_NAME}/{champion.version}": 0.70}
    monkeypatch.setattr(serving, "served_f1", lambda uri, texts, truth: scores[uri])
    for score, expected in ((0.69, False), (0.70, False), (0.71, True)):
        scores[f"models:/{TEST_MODEL_NAME}/99"] = score
        assert should_promote(challenger, ["a clause"], np.array([1]))[0] is expected, score


def test_logged_model_has_signature_example_and_portable_requirements(pyfunc):
    metadata = pyfunc.metadata
    assert [t.name for t in metadata.get_input_schema().input_types()] == ["string"]
    assert metadata.get_output_schema().input_names() == ["label", "prob_unfair"]
    assert metadata.saved_input_example_info is not None
    path = mlflow.artifacts.download_artifacts(f"{CHAMPION_URI}/requirements.txt")
    requirements = Path(path).read_text().split()
    assert "+" not in " ".join(requirements)
    assert any(line.startswith("torch==") for line in requirements)


def test_champion_predicts_like_the_module(pyfunc, clauses, expected):
    assert_same_predictions(pyfunc.predict(pd.DataFrame({"text": clauses})), expected)
    assert_same_predictions(pyfunc.predict(clauses), expected)


def test_answers_do_not_depend_on_how_clauses_are_batched(pyfunc, clauses):
    classifier = pyfunc.unwrap_python_model()
    batched = classifier.probabilities(clauses)
    try:
        classifier.batch_size = 1
        one_by_one = classifier.probabilities(clauses)
    finally:
        classifier.batch_size = BATCH_SIZES["torch"]
    assert one_by_one == pytest.approx(batched, abs=1e-5)


def saved_pyfunc(run_id: str, merged, folder: Path, runtime: str) -> Path:
    """The run's pyfunc with `runtime`, saved locally as notebook 04 logs it."""
    mlflow.pyfunc.save_model(
        folder / "model",
        python_model=str(PYFUNC_FILE),
        artifacts=export_artifacts(run_id, merged, folder / "artifacts", runtime),
        signature=signature("binary"),
        input_example=INPUT_EXAMPLE,
        pip_requirements=pip_requirements(runtime),
    )
    return folder / "model"


@pytest.fixture(scope="module")
def onnx_model(smoke_run_id, merged, tmp_path_factory) -> Path:
    return saved_pyfunc(smoke_run_id, merged, tmp_path_factory.mktemp("onnx"), "onnx")


@pytest.fixture(scope="module")
def int8_model(smoke_run_id, merged, tmp_path_factory) -> Path:
    return saved_pyfunc(smoke_run_id, merged, tmp_path_factory.mktemp("onnx-int8"), "onnx-int8")


def test_onnx_runtime_answers_like_the_module(onnx_model, clauses, expected):
    model = mlflow.pyfunc.load_model(str(onnx_model))
    assert model.unwrap_python_model().batch_size == BATCH_SIZES["onnx"]
    assert_same_predictions(model.predict(pd.DataFrame({"text": clauses})), expected)
    assert "onnxruntime==" in (onnx_model / "requirements.txt").read_text()


# Loads the pyfunc file as MLflow's models-from-code does, in a Python where torch cannot import.
WITHOUT_TORCH = """
import importlib.util, json, sys, types
sys.modules["torch"] = sys.modules["safetensors.torch"] = None
spec = importlib.util.spec_from_file_location("pyfunc_model", sys.argv[1])
pyfunc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pyfunc)
model = pyfunc.UnfairClauseClassifier()
model.load_context(types.SimpleNamespace(artifacts=json.loads(sys.argv[2])))
print(model.predict(None, json.loads(sys.argv[3]))[["label", "prob_unfair"]].to_json())
"""


def test_the_onnx_pyfunc_needs_no_torch(onnx_model, clauses, expected):
    requirements = (onnx_model / "requirements.txt").read_text().split()
    assert not [line for line in requirements if line.startswith(("torch", "safetensors"))]
    folder = onnx_model / "artifacts"
    artifacts = {"classifier": str(folder / "classifier"), "settings": f"{folder}/settings.json"}
    arguments = [str(PYFUNC_FILE), json.dumps(artifacts), json.dumps(clauses)]
    answer = subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, *arguments], capture_output=True, text=True
    )
    assert answer.returncode == 0, answer.stderr[-2000:]
    assert_same_predictions(pd.read_json(io.StringIO(answer.stdout.splitlines()[-1])), expected)


def test_onnx_int8_runtime_predicts_close_to_the_module(int8_model, clauses, expected):
    answer = mlflow.pyfunc.load_model(str(int8_model)).predict(pd.DataFrame({"text": clauses}))
    # int8 weights round every product: close, not equal (the benchmark measures test F1).
    difference = (answer["prob_unfair"] - expected["prob_unfair"]).abs()
    assert difference.max() < 0.05, difference.describe()
    assert difference.max() > 1e-3  # beyond float rounding: it ran the int8 model
    assert "onnxruntime==" in (int8_model / "requirements.txt").read_text()


def test_the_int8_model_multiplies_every_linear_layer_in_int8(int8_model):
    graph = onnx.load(str(int8_model / "artifacts" / "classifier" / "model.int8.onnx")).graph
    operators = Counter(node.op_type for node in graph.node)
    blocks = AutoConfig.from_pretrained(int8_model / "artifacts" / "classifier").num_hidden_layers
    # Per block: attention (its query, key and value in one product), then its output and the two
    # feed-forward layers; then the head. No float matrix product is left.
    assert operators["QAttention"] == blocks, operators
    assert operators["MatMulInteger"] == 3 * blocks + 1, operators
    assert operators["MatMul"] == operators["Gemm"] == operators["Attention"] == 0, operators


def test_an_export_that_scores_padding_wrong_is_refused(merged, monkeypatch, tmp_path):
    fused = onnx_export.fused_for_onnx_runtime

    def without_the_mask(model):  # the failure the example batch's padding is there to catch
        model = fused(model)
        for node in model.graph:
            if node.op_type == "Attention":
                node.resize_inputs(onnx_export.MASK_INDEX)
        return model

    monkeypatch.setattr(onnx_export, "fused_for_onnx_runtime", without_the_mask)
    with pytest.raises(RuntimeError, match="does not reproduce PyTorch's logits"):
        onnx_export.export_onnx(merged, tmp_path / "model.onnx")


def test_an_unknown_runtime_is_refused_before_anything_is_written(smoke_run_id, merged, tmp_path):
    with pytest.raises(ValueError, match="Unknown runtime 'tensorrt'"):
        export_artifacts(smoke_run_id, merged, tmp_path, runtime="tensorrt")
    assert not any(tmp_path.iterdir())


def test_adapters_left_unmerged_are_refused_before_anything_is_written(smoke_run_id, tmp_path):
    adapted = load_epoch(smoke_run_id, tagged_best_epoch(smoke_run_id))
    with pytest.raises(ValueError, match="merge_and_unload"):
        export_artifacts(smoke_run_id, adapted, tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("model_input", "message"),
    [
        (pd.DataFrame({"clause": ["a clause"]}), "Expected a column 'text'"),
        (pd.DataFrame({"text": ["fine", ""]}), "Clause 1 is empty"),
        (pd.DataFrame({"text": ["fine", None]}), "Clause 1 is missing"),
        ([3], "Incompatible input types"),  # MLflow's schema check
    ],
)
def test_bad_input_is_refused_with_the_row_named(pyfunc, model_input, message):
    with pytest.raises(MlflowException, match=message):
        pyfunc.predict(model_input)


def path_without_the_venv() -> str:
    """PATH as under `make` or a notebook kernel, or in a newcomer's shell: without the venv's bin
    folder (with `uvicorn`, which `mlflow models serve` starts by name)."""
    venv_bin = str(Path(sys.executable).parent)
    return os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != venv_bin)


@pytest.fixture(scope="module")
def server(logged):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", path_without_the_venv())
        with served(CHAMPION_URI) as url:
            yield url


def answer_frame(answer: dict) -> pd.DataFrame:
    return pd.DataFrame(answer["predictions"])


@pytest.mark.parametrize("form", ["dataframe_split", "dataframe_records", "inputs"])
def test_served_model_answers_like_the_module(server, clauses, expected, form):
    payload = {
        "dataframe_split": {
            "dataframe_split": {"columns": ["text"], "data": [[c] for c in clauses]}
        },
        "dataframe_records": {"dataframe_records": [{"text": c} for c in clauses]},
        "inputs": {"inputs": clauses},
    }[form]
    status, answer = post(server, payload)
    assert status == 200, answer
    assert_same_predictions(answer_frame(answer), expected)


@pytest.mark.parametrize(
    "records",
    [
        [{"clause": "wrong column"}],
        [{"text": 42}],
        [{"text": ""}],
        [{"text": None}],
    ],
    ids=["missing-column", "non-string", "empty", "none"],
)
def test_bad_requests_get_a_4xx_and_the_server_keeps_serving(server, records):
    status, answer = post(server, {"dataframe_records": records})
    assert 400 <= status < 500, answer
    assert answer.get("message"), answer
    status, answer = post(
        server, {"dataframe_records": [{"text": "we may end this at any time ."}]}
    )
    assert status == 200


def test_long_clause_is_truncated_and_big_requests_are_answered(server, clauses):
    status, answer = post(server, {"dataframe_records": [{"text": "we may change terms " * 500}]})
    assert status == 200 and len(answer["predictions"]) == 1
    many = (clauses * 125)[:5000]
    status, answer = post(
        server, {"dataframe_split": {"columns": ["text"], "data": [[c] for c in many]}}
    )
    assert status == 200 and len(answer["predictions"]) == 5000


def documented_serve_commands() -> list[str]:
    """The `make serve` lines of docs/serving.md and notebook 04's "Serve it over REST"."""
    notebook = json.loads((REPO_ROOT / "notebooks" / "04_pyfunc_serving.ipynb").read_text())
    texts = [(REPO_ROOT / "docs" / "serving.md").read_text()]
    texts += ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown"]
    lines = [line.split("#")[0].strip() for text in texts for line in text.splitlines()]
    return sorted({line for line in lines if line.startswith("make serve")})


def test_the_serving_commands_are_documented_as_make_serve():
    assert documented_serve_commands() == ["make serve"]


@pytest.mark.slow
def test_make_serve_as_documented_answers_a_request_without_the_venv_activated(logged):
    """`make serve` from the repository's root, its venv's bin not on PATH (the shell a newcomer
    has), pointed at this test's store and model; then the documented request."""
    port = processes.free_port()
    overrides = [f"SERVE_MODEL={CHAMPION_URI}", f"SERVE_PORT={port}"]
    overrides.append(f"UI_STORE={mlflow.get_tracking_uri()}")
    make = ["-C", str(REPO_ROOT), "--no-print-directory"]  # from the repository's root
    command = [*documented_serve_commands()[0].split(), *make, *overrides]
    env = {**os.environ, "PATH": path_without_the_venv()}
    with processes.serving(command, f"http://127.0.0.1:{port}/ping", env):
        payload = {"inputs": ["we may change these terms at any time ."]}
        status, answer = post(f"http://127.0.0.1:{port}", payload)
    assert status == 200, answer
    assert answer["predictions"][0]["label"] in {"fair", "unfair"}


@pytest.mark.slow
def test_the_int8_model_answers_from_its_own_requirements_in_a_fresh_environment(
    int8_model, clauses, monkeypatch
):
    """What docs/platforms.md has Databricks users run before creating an endpoint: the model
    installed from its requirements alone (torch-free) answers as it does here."""
    data = pd.DataFrame({"text": clauses[:8]})
    # MLflow calls `uv` by name, as from an activated environment.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    with tempfile.NamedTemporaryFile(suffix=".json") as output:
        mlflow.models.predict(
            model_uri=str(int8_model), input_data=data, env_manager="uv", output_path=output.name
        )
        answer = pd.DataFrame(json.loads(Path(output.name).read_text())["predictions"])
    expected = mlflow.pyfunc.load_model(str(int8_model)).predict(data)
    assert answer["label"].tolist() == expected["label"].tolist()
    assert answer["prob_unfair"].to_numpy() == pytest.approx(expected["prob_unfair"], abs=1e-6)
