"""Does the `gpu` preset train on this CUDA card? One epoch, a checkpoint round trip, a resume.

    python benchmarks/gpu_check.py              # every training clause (5,532)
    python benchmarks/gpu_check.py --limit 256  # a quick check on a balanced sample

Builds the `gpu` preset's architecture (roberta-base, from its configuration with random
weights, so no hub is needed) with the preset's LoRA settings, trains one epoch on the real
UNFAIR-ToS clauses in the card's mixed precision (fp16 on a T4, bf16 from compute capability
8.0) with MLflow's checkpoint autologging into a throwaway sqlite store, loads the checkpoint
back, resumes from it for a second epoch, and prints clauses/s, peak GPU memory and the
checkpoint size. The F1 of random weights means nothing; speed, memory and size do.

Without CUDA it says so and exits 0.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import mlflow
import pytorch_lightning as pl
import torch
from transformers import RobertaConfig, RobertaModel

from custom_module.checkpoints import MONITOR, checkpoint_paths, logged_epochs
from custom_module.config import mixed_precision_for_device, preset
from custom_module.model_source import bundled_minilm_path
from custom_module.module import TransformerModule
from data import LexGlueDataModule


def random_roberta_base(folder: Path) -> str:
    """roberta-base's encoder with random weights, saved where `from_pretrained` finds it.

    `RobertaConfig()`'s defaults are BERT's in three places; roberta-base has 514 positions,
    one token type and layer-norm epsilon 1e-5 (its vocabulary, 50,265, and special ids match).
    Like the hub's checkpoint it has no classification head: the module adds a fresh one.
    """
    config = RobertaConfig(max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5)
    torch.manual_seed(0)
    RobertaModel(config, add_pooling_layer=False).save_pretrained(folder)
    return str(folder)


class TrainingClock(pl.Callback):
    """Clauses and seconds of the first epoch's training batches (validation excluded)."""

    def __init__(self) -> None:
        self.clauses = 0
        self.started = 0.0
        self.seconds = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        torch.cuda.synchronize()
        self.started = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.current_epoch == 0:
            torch.cuda.synchronize()
            self.clauses += len(batch["input_ids"])
            self.seconds = time.perf_counter() - self.started


def new_trainer(max_epochs: int, precision: str, callbacks=()) -> pl.Trainer:
    """Like training's Trainer: autolog does the checkpointing and the logging."""
    return pl.Trainer(
        max_epochs=max_epochs,
        accelerator="gpu",
        devices=1,
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        callbacks=list(callbacks),
    )


def run_check(limit: int | None, data_path: str | None, tmp: Path) -> None:
    config = preset("gpu")
    precision = mixed_precision_for_device()
    major, minor = torch.cuda.get_device_capability()
    print(f"device: {torch.cuda.get_device_name()} (compute capability {major}.{minor})")
    print(f"precision: {precision}")
    # roberta's BPE files need the hub. MiniLM's WordPiece ids (30,522) all fall inside
    # roberta's 50,265-row embedding, so shapes and compute are roberta-base's.
    print("tokens: the bundled MiniLM tokenizer (roberta's needs the hub; lengths differ a bit)")
    datamodule = LexGlueDataModule(
        tokenizer_path=str(bundled_minilm_path()),
        data_path=data_path,
        batch_size=config.batch_size,
        max_length=config.max_length,
        sample_size=limit,
        seed=config.seed,
    )
    datamodule.setup("fit")
    model_path = random_roberta_base(tmp / "roberta-base-random")

    def new_module() -> TransformerModule:
        return TransformerModule(
            model_name=model_path,
            learning_rate=config.learning_rate,
            lora_r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            lora_target_modules=config.lora_target_modules,
            pooling=config.pooling,
        )

    mlflow.set_tracking_uri(f"sqlite:///{tmp / 'mlflow.db'}")
    mlflow.create_experiment("gpu-check", artifact_location=(tmp / "mlartifacts").as_uri())
    mlflow.set_experiment("gpu-check")
    mlflow.pytorch.autolog(
        checkpoint=True,
        checkpoint_monitor=MONITOR,
        checkpoint_mode="max",
        checkpoint_save_best_only=False,
        checkpoint_save_freq="epoch",
        log_models=False,
    )

    module = new_module()
    trainable, total = module.trainable_parameter_count()
    print(f"model: roberta-base architecture, {trainable:,} of {total:,} parameters train")
    clock = TrainingClock()
    first = new_trainer(1, precision, [clock])
    torch.cuda.reset_peak_memory_stats()
    with mlflow.start_run() as run:
        first.fit(module, datamodule=datamodule)
    peak = torch.cuda.max_memory_allocated() / 2**30
    print(
        f"train: {clock.clauses / clock.seconds:.1f} clauses/s "
        f"({clock.clauses:,} clauses in {clock.seconds:.1f} s, one epoch)"
    )
    print(f"peak GPU memory: {peak:.2f} GiB allocated (training and validation)")

    run_id = run.info.run_id
    artifact = checkpoint_paths(run_id)[0]
    checkpoint = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=artifact, dst_path=str(tmp / "download")
    )
    print(f"checkpoint: {artifact}, {Path(checkpoint).stat().st_size / 1e6:.1f} MB")

    loaded = mlflow.pytorch.load_checkpoint(TransformerModule, run_id, epoch=0)
    trained, restored = module.state_dict(), loaded.state_dict()
    keys = sorted(module.checkpoint_state_keys())
    same = sum(torch.equal(trained[key].cpu(), restored[key].cpu()) for key in keys)
    print(f"load back: {same} of {len(keys)} checkpointed tensors equal the trained ones")
    if same != len(keys):
        raise SystemExit("The checkpoint loaded back differs from the trained module.")

    resumed = new_trainer(2, precision)
    with mlflow.start_run(run_id=run_id):
        resumed.fit(new_module(), datamodule=datamodule, ckpt_path=checkpoint)
    print(
        f"resume: from the epoch-0 checkpoint, global step {first.global_step} -> "
        f"{resumed.global_step}; checkpoints of epochs {logged_epochs(run_id)} in the run"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="train on a balanced sample of N clauses")
    parser.add_argument("--data-path", help="local copy of coastalcph/lex_glue (or LEXGLUE_PATH)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("No CUDA device found: this check needs a GPU (e.g. a Colab T4). Nothing was run.")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        run_check(args.limit, args.data_path, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
