"""The blog's code runs here as published ("Deep Learning with MLflow (Part 2)", mlflow.org), its
import lines pointed at this repository (`pytorch_lightning` for `lightning`: MLflow's autolog
recognises only its EarlyStopping) and its values set for a small sample. docs/blog.md maps each
block onto the notebooks."""

from __future__ import annotations

import os

import mlflow
import pytest
import torch

from custom_module.checkpoints import logged_epochs
from custom_module.config import MINILM, TrainConfig, resolve_model_path

pytestmark = pytest.mark.slow

# A local folder, where a reader with the hub would write "roberta-base" or a hub id.
PRETRAINED_MODEL = resolve_model_path(MINILM)


def test_block_1_the_module_takes_the_blogs_arguments_and_forward_returns_the_loss():
    from custom_module.module import TransformerModule  # the blog defines it in this block

    model = TransformerModule(
        pretrained_model=PRETRAINED_MODEL,
        num_classes=2,
        lora_alpha=32,
        lora_dropout=0.1,
        r=8,
        lr=2e-4,
    )
    input_ids = torch.tensor([[101, 2057, 2089, 2689, 102], [101, 2017, 2089, 102, 0]])
    attention_mask = (input_ids != 0).long()
    output = model(input_ids=input_ids, attention_mask=attention_mask, label=torch.tensor([1, 0]))
    assert output.loss.ndim == 0 and output.loss > 0
    assert (model.hparams.lr, model.hparams.r, model.hparams.lora_alpha) == (2e-4, 8, 32)


@pytest.fixture(scope="module")
def blog_run_id(tracking_store, tmp_path_factory) -> str:
    """Block 2 of the blog, as published but for its imports, in a run of the test store."""
    from pytorch_lightning import Trainer
    from pytorch_lightning.callbacks import EarlyStopping

    from custom_module.config import TrainConfig
    from custom_module.module import TransformerModule
    from data import LexGlueDataModule

    train_config = TrainConfig(
        pretrained_model=PRETRAINED_MODEL,
        num_classes=2,
        lr=2e-4,
        max_length=128,
        batch_size=256,
        num_workers=os.cpu_count(),
        max_epochs=10,
        debug_mode_sample=64,  # the blog's None trains on every clause
        max_time={"hours": 3},
        model_checkpoint_dir=str(tmp_path_factory.mktemp("model-checkpoints")),
        min_delta=0.005,
        patience=4,
    )

    # Instantiate the custom Transformer class for PEFT training
    nlp_model = TransformerModule(
        pretrained_model=train_config.pretrained_model,
        num_classes=train_config.num_classes,
        lr=train_config.lr,
    )

    datamodule = LexGlueDataModule(
        pretrained_model=train_config.pretrained_model,
        max_length=train_config.max_length,
        batch_size=train_config.batch_size,
        num_workers=train_config.num_workers,
        debug_mode_sample=train_config.debug_mode_sample,
    )

    # Log system metrics while training loop is running
    mlflow.enable_system_metrics_logging()

    # Automatically log per-epoch parameters, metrics, and checkpoint weights
    mlflow.pytorch.autolog(checkpoint_save_best_only=False)

    # Define the Trainer configuration
    trainer = Trainer(
        callbacks=[
            EarlyStopping(
                monitor="Val_F1_Score",
                min_delta=train_config.min_delta,
                patience=train_config.patience,
                verbose=True,
                mode="max",
            )
        ],
        default_root_dir=train_config.model_checkpoint_dir,
        fast_dev_run=bool(train_config.debug_mode_sample),
        max_epochs=train_config.max_epochs,
        max_time=train_config.max_time,
        precision="32-true",
    )

    # Execute the training run
    trainer.fit(model=nlp_model, datamodule=datamodule)

    run = mlflow.last_active_run()
    mlflow.disable_system_metrics_logging()
    return run.info.run_id


def test_block_2_trains_the_blogs_module_on_the_blogs_data_module(blog_run_id):
    run = mlflow.get_run(blog_run_id)
    assert run.info.status == "FINISHED"
    assert {"Train_Loss", "Val_Loss", "Val_F1_Score"} <= set(run.data.metrics)
    assert run.data.params["monitor"] == "Val_F1_Score"  # autolog saw the EarlyStopping
    assert any(name.startswith("system/") for name in run.data.metrics)


@pytest.fixture(scope="module")
def four_epoch_run_id(tracking_store, tmp_path_factory) -> str:
    """A run with checkpoints of epochs 0 to 3, which block 3 loads epoch 3 of: block 2's
    `fast_dev_run` trains one batch and checkpoints nothing, so this run trains 4 short epochs."""
    from pytorch_lightning import Trainer

    from custom_module.module import TransformerModule
    from data import LexGlueDataModule

    config = TrainConfig(
        pretrained_model=PRETRAINED_MODEL,
        debug_mode_sample=32,
        val_sample_size=32,
        test_sample_size=32,
        max_epochs=4,
    )
    mlflow.pytorch.autolog(checkpoint_save_best_only=False)
    root = tmp_path_factory.mktemp("four-epochs")  # autolog keeps the checkpoints, not Lightning
    trainer = Trainer(max_epochs=4, logger=False, enable_checkpointing=False, default_root_dir=root)
    with mlflow.start_run(run_name="four short epochs") as run:
        trainer.fit(
            TransformerModule(pretrained_model=config.pretrained_model), LexGlueDataModule(config)
        )
    assert logged_epochs(run.info.run_id) == [0, 1, 2, 3]
    return run.info.run_id


def test_block_3_loads_epoch_3_and_predicts_probabilities_from_raw_tokens(
    four_epoch_run_id, tmp_path, monkeypatch
):
    from datasets import Dataset
    from pytorch_lightning import Trainer
    from torch.utils.data import DataLoader
    from transformers import AutoTokenizer

    from custom_module.module import TransformerModule

    train_config = TrainConfig(pretrained_model=PRETRAINED_MODEL)
    monkeypatch.chdir(tmp_path)  # `Trainer()` writes lightning_logs/ into the working folder

    mlflow.pytorch.autolog(disable=True)

    run_id = four_epoch_run_id

    model = mlflow.pytorch.load_checkpoint(TransformerModule, run_id, 3)

    examples_to_test = [
        "We reserve the right to modify the service price at any time and retroactively apply "
        "the adjusted price to historical service usage."
    ]

    train_module = Trainer()
    tokenizer = AutoTokenizer.from_pretrained(train_config.pretrained_model)
    tokens = tokenizer(
        examples_to_test,
        max_length=train_config.max_length,
        padding="max_length",
        truncation=True,
    )
    ds = Dataset.from_dict(dict(tokens))
    ds.set_format(type="torch", columns=["input_ids", "attention_mask"])

    predictions = train_module.predict(model, dataloaders=DataLoader(ds))

    (probability,) = predictions
    assert probability.shape == (1, 1) and 0.0 < float(probability) < 1.0
