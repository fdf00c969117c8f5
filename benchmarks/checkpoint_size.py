"""Size of a per-epoch checkpoint with and without the frozen encoder weights.

    python benchmarks/checkpoint_size.py

For the bundled MiniLM and for a roberta-base-sized model (built from its configuration, no
download), this takes one real optimizer step so Adam's state exists, then saves the Lightning
checkpoint twice: as training saves it (`TransformerModule.on_save_checkpoint` keeps only what
trains) and with every weight, as a plain LightningModule would. Both include the optimizer,
loop and callback state.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from unittest import mock

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader
from transformers import AutoModelForSequenceClassification, RobertaConfig

from custom_module.config import preset
from custom_module.module import TransformerModule


def roberta_base_from_config(_name: str, num_labels: int, **_) -> torch.nn.Module:
    """roberta-base's architecture (RobertaConfig's defaults) with random weights."""
    config = RobertaConfig(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1)
    config.num_labels = num_labels
    return AutoModelForSequenceClassification.from_config(config)


def one_step_trainer(module: TransformerModule) -> pl.Trainer:
    batch = {
        "input_ids": torch.randint(5, 1000, (4, 32)),
        "attention_mask": torch.ones(4, 32, dtype=torch.long),
        "labels": torch.tensor([[0.0], [1.0], [0.0], [1.0]]),
    }
    trainer = pl.Trainer(
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(module, DataLoader([batch], batch_size=None))
    return trainer


def checkpoint_megabytes(trainer: pl.Trainer, strip_frozen: bool) -> float:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "checkpoint.pth"
        if strip_frozen:
            trainer.save_checkpoint(path)
        else:
            with mock.patch.object(TransformerModule, "on_save_checkpoint", lambda *_: None):
                trainer.save_checkpoint(path)
        return path.stat().st_size / 1e6


def report(label: str, module: TransformerModule) -> None:
    trainer = one_step_trainer(module)
    full = checkpoint_megabytes(trainer, strip_frozen=False)
    trainable_only = checkpoint_megabytes(trainer, strip_frozen=True)
    trainable, total = module.trainable_parameter_count()
    print(
        f"{label:<12} {trainable:>10,} / {total:>12,} params trainable   "
        f"full {full:7.1f} MB   adapter-only {trainable_only:6.2f} MB   "
        f"ratio {trainable_only / full:6.2%}"
    )


def module_for(preset_name: str) -> TransformerModule:
    """The preset's model with its LoRA settings and head (`gpu`: the blog's [CLS] head)."""
    config = preset(preset_name)
    return TransformerModule(
        pretrained_model=config.pretrained_model,
        r=config.r,
        lora_alpha=config.lora_alpha,
        lora_target_modules=config.lora_target_modules,
        pooling=config.pooling,
    )


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    report("MiniLM", module_for("cpu"))
    with mock.patch.object(
        AutoModelForSequenceClassification, "from_pretrained", roberta_base_from_config
    ):
        report("roberta-base", module_for("gpu"))


if __name__ == "__main__":
    main()
