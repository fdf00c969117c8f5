"""The pyfunc model: registered as champion, predicts like the module, served over REST."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from custom_module.checkpoints import load_epoch
from custom_module.evaluation import classify_clauses, evaluate_run, log_evaluation
from custom_module.serving import champion_uri, log_pyfunc, post, served
from custom_module.train import build_datamodule, run_config

REGISTERED_NAME = "tests-unfair-tos"


@pytest.fixture(scope="module")
def model_version(smoke_run_id):
    log_evaluation(evaluate_run(smoke_run_id))
    return log_pyfunc(smoke_run_id, REGISTERED_NAME)


@pytest.fixture(scope="module")
def pyfunc(model_version):
    return mlflow.pyfunc.load_model(champion_uri(REGISTERED_NAME))


@pytest.fixture(scope="module")
def clauses(smoke_run_id) -> list[str]:
    datamodule = build_datamodule(run_config(smoke_run_id))
    datamodule.setup()
    return datamodule.texts["test"][:40]


@pytest.fixture(scope="module")
def expected(smoke_run_id, model_version, clauses) -> pd.DataFrame:
    """What the in-process module says at the run's best epoch and tuned threshold."""
    run = mlflow.get_run(smoke_run_id)
    module = load_epoch(smoke_run_id, int(run.data.tags["best_epoch"]))
    datamodule = build_datamodule(run_config(smoke_run_id))
    threshold = float(run.data.tags["decision_threshold"])
    return classify_clauses(module, datamodule, clauses, threshold)


def assert_same_predictions(answer: pd.DataFrame, expected: pd.DataFrame) -> None:
    # Merging LoRA into the encoder reorders float32 sums: equal up to rounding.
    assert answer["prob_unfair"].to_numpy() == pytest.approx(expected["prob_unfair"], abs=1e-4)
    assert answer["label"].tolist() == expected["label"].tolist()


def test_champion_alias_points_at_the_new_version(model_version, smoke_run_id):
    client = mlflow.MlflowClient()
    assert client.get_model_version_by_alias(REGISTERED_NAME, "champion").version == (
        model_version.version
    )
    assert model_version.run_id == smoke_run_id


def test_logged_model_has_signature_example_and_portable_requirements(pyfunc):
    metadata = pyfunc.metadata
    assert [t.name for t in metadata.get_input_schema().input_types()] == ["string"]
    assert metadata.get_output_schema().input_names() == ["label", "prob_unfair"]
    assert metadata.saved_input_example_info is not None
    path = mlflow.artifacts.download_artifacts(f"{champion_uri(REGISTERED_NAME)}/requirements.txt")
    requirements = Path(path).read_text().split()
    assert "+" not in " ".join(requirements)
    assert any(line.startswith("torch==") for line in requirements)


def test_champion_predicts_like_the_module(pyfunc, clauses, expected):
    assert_same_predictions(pyfunc.predict(pd.DataFrame({"text": clauses})), expected)
    assert_same_predictions(pyfunc.predict(clauses), expected)


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


@pytest.fixture(scope="module")
def server(model_version):
    # As under `make` or a notebook kernel: the venv's bin folder (with `uvicorn`) not on PATH.
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != venv_bin)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", path)
        with served(champion_uri(REGISTERED_NAME)) as url:
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
