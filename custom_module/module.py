"""`TransformerModule`: a pretrained encoder with LoRA (or, by `method`, head-only or full training)
as a LightningModule; `MODEL_FIELDS` are its hyper-parameters, so a checkpoint alone rebuilds it."""

from __future__ import annotations

from collections.abc import Sequence

import pytorch_lightning as pl
import torch
from peft import LoraConfig, TaskType, get_peft_model
from peft.tuners.lora import LoraLayer
from torch import nn
from torchmetrics import Accuracy, AveragePrecision, F1Score, MetricCollection, Precision, Recall
from transformers import (
    AutoModel,
    AutoModelForSequenceClassification,
    get_linear_schedule_with_warmup,
)
from transformers.modeling_outputs import SequenceClassifierOutput

from custom_module.config import METHODS, TrainConfig, resolve_model_path
from data import LexGlueDataModule

STAGE_PREFIX = {"fit": "Train_", "validate": "Val_", "test": "Test_"}


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The average of each clause's token vectors, padding excluded: (batch, hidden)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def epoch_metrics(task: str, num_labels: int, prefix: str) -> MetricCollection:
    """Metrics over a whole split (micro-averaged if multilabel), of the unfair class at 0.5; PR-AUC
    summarises every threshold at once, the fairer comparison on a 1:9 imbalance."""
    kwargs = {"task": task, "num_labels": num_labels, "average": "micro"}  # binary: task only
    metrics = {
        "Acc": Accuracy(**kwargs),
        "Precision": Precision(**kwargs),
        "Recall": Recall(**kwargs),
        "F1_Score": F1Score(**kwargs),
        "PR_AUC": AveragePrecision(**kwargs),
    }
    return MetricCollection(metrics, prefix=prefix)


def dropout_settings(encoder_dropout: float) -> dict[str, float]:
    """The encoder's own dropout on hidden states and attention (BERT and RoBERTa name it alike)."""
    return {"hidden_dropout_prob": encoder_dropout, "attention_probs_dropout_prob": encoder_dropout}


def mean_pooling_encoder(
    model_path: str, num_labels: int, encoder_dropout: float
) -> tuple[nn.Module, nn.Dropout, nn.Linear, TaskType]:
    """(encoder, head dropout, head, PEFT task type): our head on the mean of the token vectors, as
    all-MiniLM-L6-v2 was trained; outside PEFT, it trains in full (random: nothing to adapt)."""
    encoder = AutoModel.from_pretrained(
        model_path, add_pooling_layer=False, **dropout_settings(encoder_dropout)
    )
    head = nn.Linear(encoder.config.hidden_size, num_labels)
    return encoder, nn.Dropout(encoder_dropout), head, TaskType.FEATURE_EXTRACTION


def cls_head_encoder(
    model_path: str, num_labels: int, encoder_dropout: float
) -> tuple[nn.Module, None, None, TaskType]:
    """The blog's model, its own head on the first token (PEFT's SEQ_CLS trains it in full)."""
    model = AutoModelForSequenceClassification.from_pretrained(
        model_path, num_labels=num_labels, **dropout_settings(encoder_dropout)
    )
    return model, None, None, TaskType.SEQ_CLS


HEADS = {"mean": mean_pooling_encoder, "cls": cls_head_encoder}
POOLINGS = tuple(HEADS)
# The `TrainConfig` fields that shape the module and its optimizer: its hyper-parameters.
MODEL_FIELDS = ("pretrained_model", "num_classes", "lr", "weight_decay", "warmup_ratio", "method")
MODEL_FIELDS += ("r", "lora_alpha", "lora_dropout", "encoder_dropout", "lora_target_modules")
MODEL_FIELDS += ("pooling",)


class TransformerModule(pl.LightningModule):
    """Fine-tuning for UNFAIR-ToS, built as in the blog (`TransformerModule(pretrained_model,
    num_classes=2, lr=...)`, other `MODEL_FIELDS` by name). 2 classes take one logit, P(unfair);
    8 take one per category. `pos_weight` (per logit) counters the ~1:9 class imbalance."""

    def __init__(
        self,
        pretrained_model: str = TrainConfig.pretrained_model,
        num_classes: int = TrainConfig.num_classes,
        lr: float = TrainConfig.lr,
        pos_weight: Sequence[float] | None = None,
        prior_shift: Sequence[float] | None = None,
        **settings,
    ) -> None:
        """`settings`: the other `MODEL_FIELDS`. `prior_shift` (`data.logit_shift`) is added to the
        logits (not the loss) outside training: probabilities read at the real share of unfair."""
        super().__init__()
        unknown = set(settings) - set(MODEL_FIELDS)
        if unknown:
            raise ValueError(f"Not a setting of the module: {sorted(unknown)}; see MODEL_FIELDS.")
        settings |= {"pretrained_model": pretrained_model, "num_classes": num_classes, "lr": lr}
        config = TrainConfig().replace(**settings)
        hparams = {name: getattr(config, name) for name in MODEL_FIELDS}
        self.save_hyperparameters({"pos_weight": pos_weight, "prior_shift": prior_shift} | hparams)
        self.task, num_labels = config.task, config.num_labels
        if config.pooling not in POOLINGS:
            raise ValueError(f"Unknown pooling {config.pooling!r}; choose one of {POOLINGS}.")
        if config.method not in METHODS:
            raise ValueError(f"Unknown method {config.method!r}; choose one of {METHODS}.")
        encoder, self.head_dropout, self.head, task_type = HEADS[config.pooling](
            resolve_model_path(config.pretrained_model), num_labels, config.encoder_dropout
        )
        if config.method == "lora":
            targets = config.lora_target_modules
            lora = LoraConfig(
                task_type=task_type,
                r=config.r,
                lora_alpha=config.lora_alpha,
                lora_dropout=config.lora_dropout,
                target_modules=targets if isinstance(targets, str) else list(targets),
            )
            encoder = get_peft_model(encoder, lora)
        elif config.method == "head":  # the blog's head is inside the model, as "classifier"
            for name, parameter in encoder.named_parameters():
                parameter.requires_grad = name.startswith("classifier.")
        self.model = encoder
        # from_pretrained returns eval mode, which Lightning keeps: dropout would stay off.
        self.model.train()
        weight = None if pos_weight is None else torch.tensor(list(pos_weight))
        self.loss_fn = nn.BCEWithLogitsLoss(pos_weight=weight)
        shift = torch.tensor(list(prior_shift or [0.0] * num_labels))
        self.register_buffer("prior_shift", shift, persistent=False)  # moves with the device
        stages = STAGE_PREFIX.items()
        self.stage_metrics = nn.ModuleDict(
            {stage: epoch_metrics(config.task, num_labels, prefix) for stage, prefix in stages}
        )

    @classmethod
    def from_config(cls, config: TrainConfig, datamodule: LexGlueDataModule) -> TransformerModule:
        """The module for `config`; the loss weight comes from the training split's imbalance."""
        pos_weight = None
        if config.class_weighting:
            pos_weight = [w**config.class_weighting for w in datamodule.pos_weight()]
        settings = {name: getattr(config, name) for name in MODEL_FIELDS}
        shift = datamodule.prior_shift()
        return cls(pos_weight=pos_weight, prior_shift=shift if any(shift) else None, **settings)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, label: torch.Tensor = None
    ) -> SequenceClassifierOutput:
        """The blog's call, answered as a Hugging Face model would: `.logits` (batch, num_labels)
        and, given `label` (0/1 per clause, or per category), the `.loss` against it."""
        output = self.model(input_ids=input_ids, attention_mask=attention_mask)
        if self.head is None:  # the blog's head, inside the Hugging Face model
            logits = output.logits
        else:
            pooled = mean_pool(output.last_hidden_state, attention_mask)
            logits = self.head(self.head_dropout(pooled))
        loss = None if label is None else self.loss_fn(logits, label.view_as(logits).to(logits))
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def _shared_step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        output = self(batch["input_ids"], batch["attention_mask"], batch["labels"])
        # Training batches are the sample: scored at its odds. The rest at the real ones.
        shift = 0.0 if stage == "fit" else self.prior_shift
        probabilities = torch.sigmoid(output.logits.float() + shift)
        targets = batch["labels"].int()
        if self.task == "binary":
            probabilities, targets = probabilities.squeeze(1), targets.squeeze(1)
        metrics = self.stage_metrics[stage]
        metrics.update(probabilities, targets)
        loss, batch_size, prefix = output.loss, len(targets), STAGE_PREFIX[stage]
        # Under DDP the epoch's loss is averaged over the ranks (`sync_dist`); the metrics
        # gather every rank's predictions themselves. With one device both are as they were.
        epoch = {"on_step": False, "on_epoch": True, "batch_size": batch_size}
        self.log(f"{prefix}Loss", loss, sync_dist=True, **epoch)
        self.log_dict(metrics, **epoch)
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "fit")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "validate")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "test")

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """(batch, num_labels) P(unfair) or P(category), at the real share of unfair clauses."""
        logits = self(batch["input_ids"], batch["attention_mask"]).logits.float()
        return torch.sigmoid(logits + self.prior_shift)

    def configure_optimizers(self):
        trainable = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            trainable, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        total_steps = self.trainer.estimated_stepping_batches
        scheduler = get_linear_schedule_with_warmup(
            optimizer, int(self.hparams.warmup_ratio * total_steps), total_steps
        )
        schedule = {"scheduler": scheduler, "interval": "step"}  # stepped per batch, not epoch
        return {"optimizer": optimizer, "lr_scheduler": schedule}

    def trainable_state_keys(self) -> set[str]:
        """State-dict keys of what trains (by `method`: the LoRA matrices and the head, ...)."""
        return {name for name, parameter in self.named_parameters() if parameter.requires_grad}

    def checkpoint_state_keys(self) -> set[str]:
        """What checkpoints must hold: what trains, plus PEFT's frozen copy of the new blog head."""
        head_copies = {k for k in self.state_dict() if ".original_module." in k}
        return self.trainable_state_keys() | head_copies

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Drop the frozen encoder, rebuilt on load: with `cpu` settings a checkpoint shrinks from
        94 to 4.1 MB for MiniLM, 511 to 15 MB for roberta-base (benchmarks/checkpoint_size.py)."""
        keep = self.checkpoint_state_keys()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Complete an adapter-only checkpoint with this module's frozen weights; loading stays
        strict: a missing or unknown weight fails instead of silently keeping a random head."""
        saved = checkpoint["state_dict"]
        missing = sorted(self.checkpoint_state_keys() - set(saved))
        if missing:
            raise KeyError(
                f"Checkpoint lacks {len(missing)} trainable weight(s), e.g. {missing[:3]}: it "
                "was saved by a module with other LoRA settings or task."
            )
        checkpoint["state_dict"] = {**self.state_dict(), **saved}

    def lora_layers(self) -> list[dict]:
        """One row per layer that got a LoRA adapter: its name, shape and added parameters."""
        rows = []
        for name, layer in self.model.named_modules():
            if isinstance(layer, LoraLayer) and layer.lora_A:
                added = sum(p.numel() for p in layer.lora_A.parameters())
                added += sum(p.numel() for p in layer.lora_B.parameters())
                short = name.removeprefix("base_model.model.")
                shape = f"{layer.in_features} -> {layer.out_features}"
                rows.append({"layer": short, "shape": shape, "lora_params": added})
        return rows

    def trainable_parameter_count(self) -> tuple[int, int]:
        """(trainable, total) parameter counts: what LoRA saves, in one line."""
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return trainable, sum(p.numel() for p in self.parameters())
