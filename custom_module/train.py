"""Train a `TransformerModule` on UNFAIR-ToS, tracked by MLflow: `train(config) -> run_id`.

Also a command line: `python -m custom_module.train --preset cpu --max-epochs 3`.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from collections.abc import Sequence

import mlflow
import pytorch_lightning as pl
from pytorch_lightning.callbacks import EarlyStopping

from custom_module.checkpoints import (
    MONITOR,
    RandomStateCallback,
    load_epoch,
    tag_best_epoch,
)
from custom_module.config import TrainConfig, preset
from custom_module.model_source import resolve_model_path
from custom_module.module import TransformerModule
from custom_module.tracking import configure_tracking, ensure_experiment, get_run, reopen_run
from data import LexGlueDataModule

LATEST_CHECKPOINT_TAG = "mlflow.latest_checkpoint_artifact"
CONFIG_ARTIFACT = "config.json"


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


def build_trainer(
    config: TrainConfig, extra_callbacks: Sequence[pl.Callback] = (), **trainer_kwargs
) -> pl.Trainer:
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
            EarlyStopping(monitor=MONITOR, mode="max", patience=config.early_stopping_patience),
            RandomStateCallback(),
            *extra_callbacks,
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
    """Train, test the best epoch, log everything to a new MLflow run, and return its id."""
    return _fit_and_test(config, trainer_kwargs)


def resume(run_id: str, **trainer_kwargs) -> str:
    """Continue a run that died, from its latest checkpoint, in the same MLflow run.

    The optimizer, scheduler, epoch counter, EarlyStopping and random states come back from the
    checkpoint, so the remaining epochs match an uninterrupted run, and metrics keep their
    epoch numbering.
    """
    configure_tracking()
    run = get_run(run_id)
    if run.info.status == "FINISHED":
        raise ValueError(f"Run {run_id} already finished; there is nothing to resume.")
    checkpoint = run.data.tags.get(LATEST_CHECKPOINT_TAG)
    if checkpoint is None:
        raise LookupError(
            f"Run {run_id} logged no checkpoint before it stopped; start a new run with train()."
        )
    config = run_config(run_id)
    with tempfile.TemporaryDirectory() as folder:
        path = mlflow.MlflowClient().download_artifacts(run_id, checkpoint, folder)
        return _fit_and_test(config, trainer_kwargs, run_id=run_id, checkpoint_path=path)


def run_config(run_id: str) -> TrainConfig:
    """The `TrainConfig` a run was trained with (its `config.json` artifact)."""
    run = get_run(run_id)
    return TrainConfig(**mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/{CONFIG_ARTIFACT}"))


def _fit_and_test(
    config: TrainConfig,
    trainer_kwargs: dict,
    run_id: str | None = None,
    checkpoint_path: str | None = None,
) -> str:
    configure_tracking(config.tracking_uri)
    ensure_experiment(config.experiment_name)
    pl.seed_everything(config.seed, workers=True)
    datamodule = build_datamodule(config)
    datamodule.setup("fit")
    module = build_module(config, datamodule)
    enable_autolog(config)
    if run_id:
        active_run = reopen_run(run_id)
    else:
        active_run = mlflow.start_run(run_name=config.run_name or config.preset)
    with active_run as run:
        if checkpoint_path is None:
            log_configuration(config, module)
        trainer = build_trainer(config, **trainer_kwargs)
        trainer.fit(module, datamodule=datamodule, ckpt_path=checkpoint_path)
        # Early stopping leaves the last epoch's weights; test the best epoch's instead.
        best = load_epoch(run.info.run_id, tag_best_epoch(run.info.run_id))
        trainer.test(best, datamodule=datamodule, verbose=False)  # autolog logs Test_*
    return run.info.run_id


def log_configuration(config: TrainConfig, module: TransformerModule) -> None:
    """What autolog leaves out: the config, the module's hyper-parameters, its size."""
    mlflow.log_params(config.as_params())
    mlflow.log_params(dict(module.hparams))
    mlflow.log_dict(dataclasses.asdict(config), CONFIG_ARTIFACT)
    trainable, total = module.trainable_parameter_count()
    mlflow.log_params({"trainable_params": trainable, "total_params": total})


def parse_args(argv: list[str] | None = None) -> tuple[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="auto", help="smoke, cpu, gpu or auto")
    parser.add_argument("--resume", metavar="RUN_ID", help="continue a run that died instead")
    parser.add_argument("--data-path", help="local copy of coastalcph/lex_glue (or LEXGLUE_PATH)")
    parser.add_argument("--task", choices=["binary", "multilabel"])
    parser.add_argument("--max-epochs", type=int)
    parser.add_argument("--sample-size", type=int, help="balanced sample per split; quick runs")
    parser.add_argument("--experiment-name")
    parser.add_argument("--run-name")
    args = vars(parser.parse_args(argv))
    return args.pop("preset"), args


def main(argv: list[str] | None = None) -> None:
    name, overrides = parse_args(argv)
    resume_id = overrides.pop("resume")
    run_id = resume(resume_id) if resume_id else train(preset(name, **overrides))
    print(f"run_id: {run_id}")


if __name__ == "__main__":
    main()
