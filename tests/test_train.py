"""Training through notebook 02: what a run leaves in MLflow, presets, the command line.

Notebook 02 is the one training code path; `python -m custom_module.train` executes it, and the
session's smoke run is made by that command line (conftest.py).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import mlflow
import pytest
import torch
from run_layout import artifact_paths, assert_each_step_logged_once, command_line, failed_saying

from custom_module import runs
from custom_module.config import ALL_LINEAR_TARGETS, PRESETS, preset
from custom_module.module import TransformerModule
from custom_module.notebook_helpers import read_results
from custom_module.run_notebooks import parse_value
from custom_module.train import parse_args


def test_the_command_line_executed_notebook_02_into_a_finished_run(smoke_training, smoke_run):
    assert smoke_run.info.status == "FINISHED" and smoke_run.info.run_name == "smoke"
    assert read_results(smoke_training["notebook"])["run_id"] == smoke_training["run_id"]


def test_run_logs_every_metric_per_epoch_and_test_once(smoke_run_id, smoke_run):
    client = mlflow.MlflowClient()
    assert len(client.get_metric_history(smoke_run_id, "Val_F1_Score")) == 2
    assert 0.0 <= smoke_run.data.metrics["Test_F1_Score"] <= 1.0
    assert len(client.get_metric_history(smoke_run_id, "Test_F1_Score")) == 1
    for stage in ("Train_", "Val_", "Test_"):
        for name in ("Loss", "Acc", "Precision", "Recall", "F1_Score", "PR_AUC"):
            assert stage + name in smoke_run.data.metrics


def test_run_samples_system_metrics_while_it_trains(smoke_run_id):
    # Every second with the smoke preset: a training of several seconds has several samples.
    table = runs.system_metrics(smoke_run_id)
    assert set(runs.SYSTEM_METRICS.values()) <= set(table.columns)
    assert len(table) >= 3


def test_run_logs_module_hyperparameters_and_config(smoke_run_id, smoke_run):
    params = smoke_run.data.params
    assert params["pretrained_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert params["r"] == str(PRESETS["smoke"].r)
    assert params["config.preset"] == "smoke"
    assert int(params["trainable_params"]) < int(params["total_params"])
    assert "config.json" in artifact_paths(smoke_run_id)
    assert "learning_curves.png" in artifact_paths(smoke_run_id)


def test_run_logs_its_splits_as_datasets_and_names_notebook_02_its_source(smoke_run):
    inputs = {i.dataset.name: i for i in smoke_run.inputs.dataset_inputs}
    assert sorted(inputs) == ["unfair_tos_test", "unfair_tos_train", "unfair_tos_validation"]
    train = inputs["unfair_tos_train"]
    assert [tag.value for tag in train.tags] == ["train"]  # the context
    assert json.loads(train.dataset.profile)["num_rows"] == PRESETS["smoke"].debug_mode_sample
    assert json.loads(train.dataset.source)["split"] == "train"
    digests = {i.dataset.digest for i in inputs.values()}
    assert len(digests) == 3  # each split's rows, told apart
    assert smoke_run.data.tags["mlflow.source.name"] == "notebooks/02_peft_training.ipynb"
    assert smoke_run.data.tags["mlflow.source.type"] == "NOTEBOOK"


def test_autolog_records_early_stoppings_settings(smoke_run):
    # Only because EarlyStopping comes from pytorch_lightning, the package autolog imports:
    # `lightning`'s is not recognised, and these parameters would be missing.
    params = smoke_run.data.params
    assert (params["monitor"], params["mode"]) == ("Val_F1_Score", "max")
    assert int(params["patience"]) == PRESETS["smoke"].patience
    assert "stopped_epoch" in params


def test_run_logs_what_each_epoch_of_training_cost(smoke_run_id):
    client = mlflow.MlflowClient()
    for name in ("train_seconds", "peak_memory_mb"):
        history = client.get_metric_history(smoke_run_id, name)
        assert sorted(m.step for m in history) == [0, 1], name
        assert all(m.value > 0 for m in history), name
    history = client.get_metric_history(smoke_run_id, "peak_memory_mb")
    peaks = [m.value for m in sorted(history, key=lambda m: m.step)]
    assert peaks == sorted(peaks)  # the peak so far: it never falls


def test_tensorboard_event_files_are_artifacts_and_add_no_mlflow_metric(smoke_run_id):
    assert any(
        path.startswith("tensorboard/events.out.tfevents")
        for path in artifact_paths(smoke_run_id, "tensorboard")
    )
    scalars = runs.tensorboard_scalars(smoke_run_id)
    assert scalars["Val_F1_Score"] == "same values" and scalars["Test_F1_Score"] == "same values"
    assert set(scalars.drop("epoch")) == {"same values"}
    assert scalars["epoch"] == "not in MLflow"  # Lightning's counter stays in TensorBoard


def test_no_metric_is_logged_twice_for_one_step(smoke_run_id):
    assert_each_step_logged_once(smoke_run_id)


def test_load_checkpoint_of_epoch_0_gives_a_working_model(smoke_run_id):
    model = mlflow.pytorch.load_checkpoint(TransformerModule, smoke_run_id, epoch=0)
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor([[101, 2057, 2089, 2644, 102]]), torch.ones(1, 5).long()).logits
    assert logits.shape == (1, 1) and torch.isfinite(logits).all()


def test_checkpoints_do_not_carry_the_frozen_encoder(smoke_run_id, tmp_path):
    path = mlflow.MlflowClient().download_artifacts(
        smoke_run_id, "checkpoints/epoch_0/checkpoint.pth", str(tmp_path)
    )
    # The frozen MiniLM encoder alone is ~90 MB; adapters, head and optimizer state ~4.1 MB.
    assert Path(path).stat().st_size < 5e6


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_auto_preset_chooses_cpu_without_cuda_and_says_so(capsys):
    assert preset("auto").preset == "cpu"
    assert "chose 'cpu'" in capsys.readouterr().out


# What a preset other than `gpu` may change: the model (its head, its adapters) stays the `cpu`
# preset's, so every exercise's numbers hold on the preset its notebook runs. `workshop` turns the
# encoder's dropout off, which did better on its sample (docs/presets.md).
SIZE_AND_SCHEDULE = {
    "preset",
    "run_name",
    "debug_mode_sample",
    "val_sample_size",
    "test_sample_size",
    "encoder_dropout",
    "max_epochs",
    "lr",
    "patience",
    "max_time",
    "system_metrics_interval_seconds",
}


@pytest.mark.parametrize("name", ["smoke", "workshop"])
def test_small_presets_train_the_cpu_presets_model(name):
    small, cpu = dataclasses.asdict(preset(name)), dataclasses.asdict(preset("cpu"))
    changed = {field for field in cpu if small[field] != cpu[field]}
    assert changed <= SIZE_AND_SCHEDULE
    assert (cpu["pooling"], cpu["lora_target_modules"]) == ("mean", ALL_LINEAR_TARGETS)


def test_workshop_preset_trains_on_a_sample_and_tests_on_every_clause():
    workshop = preset("workshop")
    assert (workshop.debug_mode_sample, workshop.val_sample_size) == (2000, 800)
    assert workshop.test_sample_size is None


def test_gpu_preset_is_roberta_base_with_mixed_precision():
    config = preset("gpu")
    assert config.pretrained_model == "roberta-base"
    assert config.precision in {"16-mixed", "bf16-mixed"}


def test_unknown_preset_and_unknown_field_are_rejected():
    with pytest.raises(ValueError, match="smoke"):
        preset("tiny")
    with pytest.raises(ValueError, match="epochs"):
        preset("cpu", epochs=3)


def test_run_name_defaults_to_the_preset_name():
    assert preset("smoke").run_name == "smoke"
    assert preset("smoke", run_name="mine").run_name == "mine"


def test_cli_options_are_the_notebooks_parameters():
    output, parameters = parse_args(
        ["--preset", "smoke", "--max-epochs", "1", "--num-classes", "8", "--resume", "abc"]
    )
    assert parameters == {
        "preset_name": "smoke",
        "max_epochs": 1,
        "num_classes": 8,
        "resume_run_id": "abc",
    }
    assert output.name == "02_peft_training.ipynb"


def test_cli_values_become_python_scalars():
    values = ("3", "0.5", "None", "True", "cpu", "[2, 8]", "0" * 32, "12e4" + "0" * 28)
    parsed = [3, 0.5, None, True, "cpu", [2, 8], *values[-2:]]
    assert [parse_value(v) for v in values] == parsed
    assert parse_value("{'lr': 0.002}") == {"lr": 0.002}
    assert parse_value("{'a': [1]}") == "{'a': [1]}"  # nested values stay text
    # but for `max_time`, Lightning's dict, which the multilabel recipe overrides
    overrides = "{'class_weighting': 0.5, 'max_time': {'hours': 2}}"
    assert parse_value(overrides) == {"class_weighting": 0.5, "max_time": {"hours": 2}}
    assert parse_value("{1: 2}") == "{1: 2}"  # a dict of overrides is keyed by field name


def test_a_preset_takes_its_overrides_by_name_only():
    config = preset("cpu", r=16, lora_alpha=16)
    assert (config.r, config.lora_alpha) == (16, 16)
    with pytest.raises(ValueError, match=r"Unknown TrainConfig field\(s\): \['lora_rank'\]"):
        preset("cpu", lora_rank=16)


def test_cli_rejects_an_option_the_notebook_does_not_take():
    with pytest.raises(SystemExit):
        parse_args(["--epochs", "3"])


def test_cli_says_why_a_run_cannot_resume_and_exits_1(smoke_run_id, tmp_path):
    output = ["--output", str(tmp_path / "02.ipynb")]
    result = command_line("custom_module.train", "--resume", smoke_run_id, *output)
    failed_saying(
        result,
        "02_peft_training.ipynb failed in cell",
        "already finished; there is nothing to resume",
    )


@pytest.mark.notebook
@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        (
            ["--config-overrides", "{'learning_rte': 0.002}"],
            "Unknown TrainConfig field(s): ['learning_rte']",
        ),
        (
            ["--seed", "1", "--config-overrides", "{'seed': 2}"],
            "multiple values for keyword argument 'seed'",
        ),
    ],
    ids=["a typo", "a field given twice"],
)
def test_cli_config_overrides_reach_the_preset_and_a_bad_one_is_named(tmp_path, arguments, error):
    output = ["--output", str(tmp_path / "02.ipynb")]
    result = command_line("custom_module.train", "--preset", "smoke", *arguments, *output)
    failed_saying(result, error)
