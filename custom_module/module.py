"""`TransformerModule`: a pretrained encoder with LoRA adapters, as a LightningModule.

Only the LoRA matrices and the classification head train; the encoder stays frozen. Every
constructor argument is saved as a hyper-parameter, so `load_from_checkpoint` (and
`mlflow.pytorch.load_checkpoint`) can rebuild the module from a checkpoint alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytorch_lightning as pl
import torch
from peft import LoraConfig, TaskType, get_peft_model
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryF1Score,
    BinaryPrecision,
    BinaryRecall,
    MultilabelAccuracy,
    MultilabelF1Score,
    MultilabelPrecision,
    MultilabelRecall,
)
from transformers import AutoModelForSequenceClassification, get_linear_schedule_with_warmup

from custom_module.model_source import MINILM, resolve_model_path

# Where LoRA adapters go: the self-attention projections of every encoder block (BERT and
# RoBERTa name them alike) and BERT's pooler. all-MiniLM-L6-v2 was tuned for mean pooling, so its
# [CLS] pooler must adapt before the head can use it; a rank-r update learns that as well as
# training its 147K weights in full, at a tenth of the checkpoint size. RoBERTa has no pooler.
LORA_TARGET_MODULES = r".*(encoder\.layer\.\d+\.attention\.self\.(query|key|value)|pooler\.dense)"
# New for this task, so trained in full (BERT: one linear layer; RoBERTa: dense + out_proj).
TRAINED_HEAD_MODULES = ("classifier",)
STAGE_PREFIX = {"fit": "Train_", "validate": "Val_", "test": "Test_"}


def epoch_metrics(task: str, num_labels: int, prefix: str) -> MetricCollection:
    """Stateful metrics accumulated over a whole split; micro-averaged in the multilabel task."""
    if task == "binary":
        metrics = {
            "Acc": BinaryAccuracy(),
            "Precision": BinaryPrecision(),
            "Recall": BinaryRecall(),
            "F1_Score": BinaryF1Score(),
        }
    else:
        kwargs = {"num_labels": num_labels, "average": "micro"}
        metrics = {
            "Acc": MultilabelAccuracy(**kwargs),
            "Precision": MultilabelPrecision(**kwargs),
            "Recall": MultilabelRecall(**kwargs),
            "F1_Score": MultilabelF1Score(**kwargs),
        }
    return MetricCollection(metrics, prefix=prefix)


class TransformerModule(pl.LightningModule):
    """LoRA fine-tuning of `AutoModelForSequenceClassification` for UNFAIR-ToS.

    `task="binary"` has one logit (unfair or not); `task="multilabel"` has one per category.
    Both train with a sigmoid cross-entropy; `pos_weight` (one value per logit, usually the
    fair/unfair ratio of the training split) counters the ~1:9 class imbalance.
    """

    def __init__(
        self,
        model_name: str = MINILM,
        task: str = "binary",
        num_labels: int = 1,
        learning_rate: float = 5e-4,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.06,
        lora_r: int = 8,
        lora_alpha: int = 16,
        lora_dropout: float = 0.1,
        lora_target_modules: str | Sequence[str] = LORA_TARGET_MODULES,
        pos_weight: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if task == "binary" and num_labels != 1:
            raise ValueError("The binary task has exactly one logit: use num_labels=1.")
        base = AutoModelForSequenceClassification.from_pretrained(
            resolve_model_path(model_name), num_labels=num_labels
        )
        lora = LoraConfig(
            task_type=TaskType.SEQ_CLS,
            modules_to_save=list(TRAINED_HEAD_MODULES),
            r=lora_r,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            target_modules=lora_target_modules
            if isinstance(lora_target_modules, str)
            else list(lora_target_modules),
        )
        self.model = get_peft_model(base, lora)
        # from_pretrained returns eval-mode modules and Lightning keeps each module's mode,
        # so without this dropout would silently stay off during training.
        self.model.train()
        weight = None if pos_weight is None else torch.tensor(list(pos_weight))
        self.loss_fn = nn.BCEWithLogitsLoss(pos_weight=weight)
        self.stage_metrics = nn.ModuleDict(
            {
                stage: epoch_metrics(task, num_labels, prefix)
                for stage, prefix in STAGE_PREFIX.items()
            }
        )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits, shape (batch, num_labels)."""
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    def _shared_step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        logits = self(batch["input_ids"], batch["attention_mask"])
        labels = batch["labels"].to(logits.dtype)
        loss = self.loss_fn(logits, labels)
        probabilities = torch.sigmoid(logits.float())
        targets = batch["labels"].int()
        if self.hparams.task == "binary":
            probabilities, targets = probabilities.squeeze(1), targets.squeeze(1)
        metrics = self.stage_metrics[stage]
        metrics.update(probabilities, targets)
        batch_size = len(labels)
        prefix = STAGE_PREFIX[stage]
        self.log(f"{prefix}Loss", loss, on_step=False, on_epoch=True, batch_size=batch_size)
        self.log_dict(metrics, on_step=False, on_epoch=True, batch_size=batch_size)
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "fit")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "validate")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "test")

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Probabilities, shape (batch, num_labels): P(unfair), or P(category) per category."""
        return torch.sigmoid(self(batch["input_ids"], batch["attention_mask"]).float())

    def configure_optimizers(self):
        trainable = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            trainable, lr=self.hparams.learning_rate, weight_decay=self.hparams.weight_decay
        )
        total_steps = self.trainer.estimated_stepping_batches
        scheduler = get_linear_schedule_with_warmup(
            optimizer, int(self.hparams.warmup_ratio * total_steps), total_steps
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def trainable_state_keys(self) -> set[str]:
        """State-dict keys of what trains: the LoRA matrices and the classification head."""
        return {name for name, parameter in self.named_parameters() if parameter.requires_grad}

    def checkpoint_state_keys(self) -> set[str]:
        """What a checkpoint must hold: the trainable weights, plus PEFT's frozen copy of the
        head (`original_module`), which is freshly random for a new task and tiny."""
        head_copies = {k for k in self.state_dict() if ".original_module." in k}
        return self.trainable_state_keys() | head_copies

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Drop the frozen encoder: it is rebuilt from `model_name` on load.

        With the default LoRA settings this turns MiniLM's 92 MB checkpoint into 1.5 MB per
        epoch, roberta-base's 511 MB into 15 MB (`benchmarks/checkpoint_size.py`); the
        optimizer, loop and callback states are kept, so runs can resume.
        """
        keep = self.checkpoint_state_keys()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Complete an adapter-only checkpoint with the frozen weights this module was built with.

        Loading stays strict: a checkpoint that lacks a trainable weight, or holds a weight this
        module does not have, still fails instead of silently keeping a random head.
        """
        saved = checkpoint["state_dict"]
        missing = sorted(self.checkpoint_state_keys() - set(saved))
        if missing:
            raise KeyError(
                f"Checkpoint lacks {len(missing)} trainable weight(s), e.g. {missing[:3]}: it "
                "was saved by a module with other LoRA settings or task."
            )
        checkpoint["state_dict"] = {**self.state_dict(), **saved}

    def trainable_parameter_count(self) -> tuple[int, int]:
        """(trainable, total) parameter counts: what LoRA saves, in one line."""
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return trainable, sum(p.numel() for p in self.parameters())
