"""train(): what a run leaves in MLflow, presets, the tracking store, the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import torch

from custom_module import PRESETS, TransformerModule, preset
from custom_module.tracking import DEFAULT_STORE, tracking_uri
from custom_module.train import parse_args

REPO_ROOT = Path(__file__).resolve().parents[1]


def artifact_paths(run_id: str, path: str = "") -> list[str]:
    client = mlflow.MlflowClient()
    found = []
    for item in client.list_artifacts(run_id, path):
        found += artifact_paths(run_id, item.path) if item.is_dir else [item.path]
    return found


def test_run_has_a_checkpoint_for_every_epoch(smoke_run_id):
    paths = artifact_paths(smoke_run_id, "checkpoints")
    assert "checkpoints/epoch_0/checkpoint.pth" in paths
    assert "checkpoints/epoch_1/checkpoint.pth" in paths


def test_run_logs_validation_f1_per_epoch_and_test_f1(smoke_run_id, smoke_run):
    history = mlflow.MlflowClient().get_metric_history(smoke_run_id, "Val_F1_Score")
    assert len(history) == 2
    assert 0.0 <= smoke_run.data.metrics["Test_F1_Score"] <= 1.0
    assert len(mlflow.MlflowClient().get_metric_history(smoke_run_id, "Test_F1_Score")) == 1
    for stage in ("Train_", "Val_", "Test_"):
        for name in ("Loss", "Acc", "Precision", "Recall", "F1_Score"):
            assert stage + name in smoke_run.data.metrics


def test_run_logs_system_metrics(smoke_run):
    assert any(name.startswith("system/") for name in smoke_run.data.metrics)


def test_run_logs_module_hyperparameters_and_config(smoke_run_id, smoke_run):
    params = smoke_run.data.params
    assert params["model_name"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert params["lora_r"] == str(PRESETS["smoke"].lora_r)
    assert params["config.preset"] == "smoke"
    assert int(params["trainable_params"]) < int(params["total_params"])
    assert "config.json" in artifact_paths(smoke_run_id)


def test_load_checkpoint_of_epoch_0_gives_a_working_model(smoke_run_id):
    model = mlflow.pytorch.load_checkpoint(TransformerModule, smoke_run_id, epoch=0)
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor([[101, 2057, 2089, 2644, 102]]), torch.ones(1, 5).long())
    assert logits.shape == (1, 1) and torch.isfinite(logits).all()


def test_checkpoints_do_not_carry_the_frozen_encoder(smoke_run_id, tmp_path):
    path = mlflow.MlflowClient().download_artifacts(
        smoke_run_id, "checkpoints/epoch_0/checkpoint.pth", str(tmp_path)
    )
    # The frozen MiniLM encoder alone is ~90 MB; adapters, head and optimizer state ~1.5 MB.
    assert Path(path).stat().st_size < 2e6


def test_default_store_is_the_sqlite_file_at_the_repo_root(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri() == f"sqlite:///{REPO_ROOT / 'mlflow.db'}"
    assert DEFAULT_STORE.parent == REPO_ROOT


def test_mlflow_tracking_uri_overrides_the_default(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri() == "http://127.0.0.1:5000"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_auto_preset_chooses_cpu_without_cuda_and_says_so(capsys):
    assert preset("auto").preset == "cpu"
    assert "chose 'cpu'" in capsys.readouterr().out


def test_gpu_preset_is_roberta_base_with_mixed_precision():
    config = preset("gpu")
    assert config.model_name == "roberta-base"
    assert config.precision in {"16-mixed", "bf16-mixed"}


def test_unknown_preset_and_unknown_field_are_rejected():
    with pytest.raises(ValueError, match="smoke"):
        preset("tiny")
    with pytest.raises(ValueError, match="epochs"):
        preset("cpu", epochs=3)


def test_cli_arguments_become_preset_overrides():
    name, overrides = parse_args(["--preset", "smoke", "--max-epochs", "1", "--task", "multilabel"])
    assert name == "smoke"
    assert {k: v for k, v in overrides.items() if v is not None} == {
        "max_epochs": 1,
        "task": "multilabel",
    }


def test_cli_trains_and_prints_the_run_id(tracking_store, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "custom_module.train", "--preset", "smoke", "--max-epochs", "1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # any folder: the store comes from MLFLOW_TRACKING_URI
        timeout=600,
        check=True,
    )
    run_id = result.stdout.strip().splitlines()[-1].removeprefix("run_id: ")
    assert mlflow.get_run(run_id).info.status == "FINISHED"
