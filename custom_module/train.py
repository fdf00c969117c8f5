"""Train a `TransformerModule` on UNFAIR-ToS, tracked by MLflow: `train(config) -> run_id`.

Also a command line: `python -m custom_module.train --preset cpu --max-epochs 3`.
"""

from __future__ import annotations

import argparse
import dataclasses

import mlflow
import pytorch_lightning as pl
from pytorch_lightning.callbacks import EarlyStopping

from custom_module.config import TrainConfig, preset
from custom_module.model_source import resolve_model_path
from custom_module.module import TransformerModule
from custom_module.tracking import configure_tracking, ensure_experiment
from data import LexGlueDataModule

MONITOR = "Val_F1_Score"


def build_datamodule(config: TrainConfig) -> LexGlueDataModule:
    return LexGlueDataModule(
        tokenizer_path=resolve_model_path(config.model_name),
        data_path=config.data_path,
        task=config.task,
        batch_size=config.batch_size,
        max_length=config.max_length,
        sample_size=config.sample_size,
        seed=config.seed,
    )


def build_module(config: TrainConfig, datamodule: LexGlueDataModule) -> TransformerModule:
    """The module for `config`; the loss weight comes from the training split's imbalance."""
    pos_weight = None
    if config.class_weighting:
        pos_weight = [w**config.class_weighting for w in datamodule.pos_weight()]
    return TransformerModule(
        model_name=config.model_name,
        task=config.task,
        num_labels=datamodule.num_labels,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_ratio=config.warmup_ratio,
        lora_r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        lora_target_modules=config.lora_target_modules,
        pos_weight=pos_weight,
    )


def build_trainer(config: TrainConfig, **trainer_kwargs) -> pl.Trainer:
    """A Trainer that stops early on validation F1; MLflow autolog adds the checkpointing."""
    max_time = None
    if config.max_time_minutes is not None:
        max_time = {"minutes": config.max_time_minutes}
    return pl.Trainer(
        max_epochs=config.max_epochs,
        max_time=max_time,
        accelerator=config.accelerator,
        devices=1,
        precision=config.precision,
        callbacks=[
            EarlyStopping(monitor=MONITOR, mode="max", patience=config.early_stopping_patience)
        ],
        logger=False,  # MLflow autolog records the metrics; no lightning_logs/ folder
        enable_checkpointing=False,  # autolog logs a checkpoint per epoch to the run instead
        num_sanity_val_steps=0,
        **trainer_kwargs,
    )


def enable_autolog(config: TrainConfig) -> None:
    """System metrics and autolog with a checkpoint every epoch (whatever its validation F1)."""
    mlflow.enable_system_metrics_logging()
    mlflow.set_system_metrics_sampling_interval(config.system_metrics_interval_seconds)
    mlflow.pytorch.autolog(
        checkpoint=True,
        checkpoint_save_best_only=False,
        checkpoint_save_freq="epoch",
        checkpoint_monitor=MONITOR,
        checkpoint_mode="max",
        # The deployable model is the pyfunc built from the best checkpoint; a pickled copy of
        # the last epoch's full module would add ~90 MB per run and serve nothing.
        log_models=False,
    )


def train(config: TrainConfig, **trainer_kwargs) -> str:
    """Train, evaluate on the test split, log everything to MLflow, and return the run id."""
    configure_tracking(config.tracking_uri)
    ensure_experiment(config.experiment_name)
    pl.seed_everything(config.seed, workers=True)
    datamodule = build_datamodule(config)
    datamodule.setup("fit")
    module = build_module(config, datamodule)
    enable_autolog(config)
    with mlflow.start_run(run_name=config.run_name or config.preset) as run:
        mlflow.log_params(config.as_params())
        mlflow.log_params(dict(module.hparams))
        mlflow.log_dict(dataclasses.asdict(config), "config.json")
        trainable, total = module.trainable_parameter_count()
        mlflow.log_params({"trainable_params": trainable, "total_params": total})
        trainer = build_trainer(config, **trainer_kwargs)
        trainer.fit(module, datamodule=datamodule)
        trainer.test(module, datamodule=datamodule, verbose=False)  # autolog logs Test_*
    return run.info.run_id


def parse_args(argv: list[str] | None = None) -> tuple[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="auto", help="smoke, cpu, gpu or auto")
    parser.add_argument("--data-path", help="local copy of coastalcph/lex_glue (or LEXGLUE_PATH)")
    parser.add_argument("--task", choices=["binary", "multilabel"])
    parser.add_argument("--max-epochs", type=int)
    parser.add_argument("--sample-size", type=int, help="balanced sample per split; quick runs")
    parser.add_argument("--experiment-name")
    parser.add_argument("--run-name")
    args = vars(parser.parse_args(argv))
    name = args.pop("preset")
    return name, {key: value for key, value in args.items() if value is not None}


def main(argv: list[str] | None = None) -> None:
    name, overrides = parse_args(argv)
    run_id = train(preset(name, **overrides))
    print(f"run_id: {run_id}")


if __name__ == "__main__":
    main()
