"""`TrainConfig`, its named presets, and reading back the config a run was trained with.

A preset is a documented `TrainConfig` instance, not a branch in the training code. `smoke`,
`workshop` and `cpu` train one model (MiniLM, a mean-pooling head, LoRA on every linear layer) and
differ only in data size, epochs, learning rate and patience: `smoke` proves the pipeline works in
seconds, `workshop` (the notebooks' default) learns something real in minutes and stops early,
`cpu` trains on every clause for the README's result. `gpu` is the blog's roberta-base setup for
a CUDA card.

This module is the one home of every default: `TransformerModule` and `LexGlueDataModule` take
theirs from `TrainConfig`. It imports neither torch nor MLflow until a function needs them, so
evaluation and serving can read a run's config without loading the training stack.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from custom_module.model_source import MINILM, ROBERTA_BASE

# Where LoRA adapters go (BERT and RoBERTa name their layers alike). The `cpu` preset adapts every
# linear layer of every encoder block: attention's query, key, value and output, and the
# feed-forward pair. That learns about twice as fast per epoch as attention alone, which is what a
# 2-core budget needs (the README's search table); it stays stable with the mean-pooling head.
ALL_LINEAR_TARGETS = (
    r".*encoder\.layer\.\d+\.(attention\.(self\.(query|key|value)|output\.dense)"
    r"|intermediate\.dense|output\.dense)"
)
# The blog's targets: the self-attention projections, plus BERT's pooler, which the blog's [CLS]
# head reads (all-MiniLM-L6-v2 was tuned for mean pooling, so its pooler must adapt too; RoBERTa
# has none). Cheaper per step; the `gpu` preset uses it.
ATTENTION_TARGETS = r".*(encoder\.layer\.\d+\.attention\.self\.(query|key|value)|pooler\.dense)"
# Let `preset` choose fp16 or bf16 for the GPU at hand (see `mixed_precision_for_device`).
DEVICE_MIXED_PRECISION = "device-mixed"
CONFIG_ARTIFACT = "config.json"
# LexGLUE's own task, the 8 categories with a logit each, on the `cpu` preset: notebook 02's
# parameters for it (the README's `python -m custom_module.train --task multilabel ...`). The rare
# categories need their loss weighted (fair/unfair ratio ** 0.5 per category) and more epochs;
# the run is filed apart, and notebook 03 scores the latest one with LexGLUE's protocol.
MULTILABEL_EXPERIMENT = "lexglue-unfair-tos-multilabel"
MULTILABEL_TRAINING = {
    "preset_name": "cpu",  # every clause: LexGLUE's scores are of the whole test split
    "task": "multilabel",
    "max_epochs": 8,
    # 8 full-data epochs took 17 min on 2 idle cores (26 in another session): the `cpu` preset's
    # 45-min guard would cut them short on a busy machine.
    "config_overrides": {"class_weighting": 0.5, "max_time_minutes": 120.0},
    "experiment_name": MULTILABEL_EXPERIMENT,
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs; the defaults are the `cpu` preset."""

    preset: str = "cpu"
    model_name: str = MINILM
    task: str = "binary"  # "binary" (fair vs unfair) or "multilabel" (8 categories)
    data_path: str | None = None  # None: LEXGLUE_PATH, else the hub id
    sample_size: int | None = None  # balanced sample of each split for quick runs; None: all
    max_length: int = 128
    batch_size: int = 16
    max_epochs: int = 2
    max_time_minutes: float = 45.0  # a guard: training stops after this, whatever the epoch
    early_stopping_patience: int = 2
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0  # 0: PEFT skips the dropout on every adapter's input, ~25% faster
    # The frozen encoder's own dropout (hidden states and attention) and the head's, as BERT-family
    # models ship them. 0.0 makes steps cheaper but did not beat 0.1 (the README's search table).
    encoder_dropout: float = 0.1
    lora_target_modules: str = ALL_LINEAR_TARGETS
    pooling: str = "mean"  # what the head reads: "mean" of the tokens, or the blog's "cls"
    # Loss weight of unfair clauses = (fair/unfair ratio) ** class_weighting: 0 is unweighted
    # (best on validation here; the threshold is tuned instead), 1 the full ~7.8.
    class_weighting: float = 0.0
    precision: str = "32-true"
    accelerator: str = "auto"
    seed: int = 42
    system_metrics_interval_seconds: float = 10.0  # how often system/* metrics are sampled
    experiment_name: str = "lexglue-unfair-tos-lora"
    run_name: str | None = None  # None: the preset's name

    def replace(self, **overrides) -> TrainConfig:
        """A copy with some fields changed; unknown names fail loudly."""
        unknown = set(overrides) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"Unknown TrainConfig field(s): {sorted(unknown)}.")
        return dataclasses.replace(self, **overrides)

    def as_params(self) -> dict[str, str]:
        """Flat `config.*` strings for `mlflow.log_params`."""
        return {f"config.{k}": str(v) for k, v in dataclasses.asdict(self).items()}


PRESETS: dict[str, TrainConfig] = {
    # Seconds on CPU: a balanced 64-clause sample of each split, two epochs. Proves the wiring.
    "smoke": TrainConfig(
        preset="smoke",
        sample_size=64,
        max_epochs=2,
        max_time_minutes=5.0,
        system_metrics_interval_seconds=1.0,
    ),
    # The notebooks' default, for classes and sweeps: the `cpu` preset's model on a balanced
    # 600-clause sample of each split, at twice the learning rate. Such a sample overfits within a
    # few epochs (validation loss turns up while training loss keeps falling), so early stopping
    # ends the run well before `max_epochs`, which also sets the learning-rate schedule.
    "workshop": TrainConfig(
        preset="workshop",
        sample_size=600,
        max_epochs=10,
        early_stopping_patience=1,
        max_time_minutes=20.0,
        learning_rate=2e-3,
        system_metrics_interval_seconds=2.0,
    ),
    # The offline default: bundled MiniLM, every row, 2 epochs (about 3 min each on 2 cores),
    # mean pooling and LoRA on every linear layer (the README's search table says why).
    "cpu": TrainConfig(),
    # The blog's setup. fp16 on a T4 (bf16 is ~4x slower there), bf16 on Ampere or newer.
    "gpu": TrainConfig(
        preset="gpu",
        model_name=ROBERTA_BASE,
        max_epochs=6,
        max_time_minutes=60.0,
        early_stopping_patience=2,
        learning_rate=5e-4,
        lora_target_modules=ATTENTION_TARGETS,
        lora_dropout=0.1,
        pooling="cls",
        precision=DEVICE_MIXED_PRECISION,
    ),
}


def mixed_precision_for_device() -> str:
    """`bf16-mixed` on GPUs with fast bf16 (compute capability 8.0+), else `16-mixed`."""
    import torch

    if torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 0):
        return "bf16-mixed"
    return "16-mixed"


def preset(name: str = "auto", config_overrides: dict | None = None, **overrides) -> TrainConfig:
    """The named preset with `overrides` applied. `auto` is `gpu` with CUDA, else `cpu`.

    An override of `None` keeps the preset's value, so notebook parameters can default to None.
    `config_overrides` holds more fields by name, as notebook 02's parameter of that name does: it
    may repeat a field the notebook also takes by name (`lora_r`, `seed`, ...), and a field set to
    two different values is refused.
    """
    for field, value in (config_overrides or {}).items():
        if overrides.get(field) not in (None, value):
            raise ValueError(
                f"{field} is set twice: {overrides[field]!r}, and {value!r} in config_overrides."
            )
        overrides[field] = value
    if name == "auto":
        import torch

        name = "gpu" if torch.cuda.is_available() else "cpu"
        print(f"preset 'auto' chose {name!r} (CUDA {'found' if name == 'gpu' else 'not found'}).")
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; choose one of {['auto', *PRESETS]}.")
    config = PRESETS[name].replace(**{k: v for k, v in overrides.items() if v is not None})
    if config.precision == DEVICE_MIXED_PRECISION:
        config = config.replace(precision=mixed_precision_for_device())
    if config.run_name is None:
        config = config.replace(run_name=config.preset)
    return config


def run_config(run_id: str) -> TrainConfig:
    """The `TrainConfig` a run was trained with (its `config.json` artifact)."""
    import mlflow

    from custom_module.tracking import get_run

    run = get_run(run_id)
    try:
        fields = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/{CONFIG_ARTIFACT}")
    except mlflow.exceptions.MlflowException as error:
        raise LookupError(
            f"Run {run_id} has no {CONFIG_ARTIFACT}: it was not made by notebook 02 "
            "(or `python -m custom_module.train`), or it died before training started."
        ) from error
    # A run logged before a field was dropped (`tracking_uri`, say) still loads.
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in fields.items() if k in known})
