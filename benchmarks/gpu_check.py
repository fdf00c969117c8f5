"""Does the `gpu` preset train on this CUDA card? Notebook 02 itself, on roberta-base's shape.

    python benchmarks/gpu_check.py              # every training clause (5,532)
    python benchmarks/gpu_check.py --limit 256  # a quick check on a balanced sample
    python benchmarks/gpu_check.py --devices 1 2  # one GPU, then two (DDP), side by side

Runs notebook 02 (`custom_module.train.train`, the path every run takes: its Trainer, callbacks,
EarlyStopping and checkpoint autologging) with the `gpu` preset for two epochs, in the card's
mixed precision (fp16 on a T4, bf16 from compute capability 8.0), into a throwaway sqlite store.
The model is roberta-base's architecture with random weights (saved with the bundled MiniLM
tokenizer, whose ids all fall inside roberta's vocabulary), so no hub is needed. It prints
seconds per epoch and clauses/s, the peak GPU memory of training (rank 0's with DDP) and what
MLflow's system metrics saw, the checkpoint size, and loads the best epoch back, for each device
count of `--devices` (the global batch stays the preset's). The F1 of random weights means
nothing; speed, memory and size do.

Without CUDA it says so and exits 0.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import mlflow
import torch
from transformers import AutoTokenizer, RobertaConfig, RobertaModel

from custom_module.checkpoints import load_epoch, tagged_best_epoch
from custom_module.config import MONITOR, bundled_minilm_path
from custom_module.runs import checkpoint_megabytes
from custom_module.tracking import run_config
from custom_module.train import train


def random_roberta_base(folder: Path) -> str:
    """roberta-base's encoder with random weights and the MiniLM tokenizer, where
    `from_pretrained` finds them.

    `RobertaConfig()`'s defaults are BERT's in three places; roberta-base has 514 positions,
    one token type and layer-norm epsilon 1e-5 (its vocabulary, 50,265, and special ids match).
    Like the hub's checkpoint it has no classification head: the module adds a fresh one.
    """
    config = RobertaConfig(max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5)
    torch.manual_seed(0)
    RobertaModel(config, add_pooling_layer=False).save_pretrained(folder)
    AutoTokenizer.from_pretrained(bundled_minilm_path()).save_pretrained(folder)
    return str(folder)


def run_check(limit: int | None, data_path: str | None, tmp: Path, devices: int) -> None:
    major, minor = torch.cuda.get_device_capability()  # this process never forks: it may ask
    print(f"{devices} x {torch.cuda.get_device_name()} (compute capability {major}.{minor})")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
    model_path = random_roberta_base(tmp / "roberta-base-random")
    run_id = train(
        devices=devices,
        preset_name="gpu",
        max_epochs=2,
        debug_mode_sample=limit,
        data_path=data_path,
        experiment_name="gpu-check",
        config_overrides={"pretrained_model": model_path},
    )
    config, run = run_config(run_id), mlflow.get_run(run_id)
    print(f"precision: {config.precision}; trainable params {run.data.params['trainable_params']}")
    history = mlflow.MlflowClient().get_metric_history(run_id, MONITOR)
    ends = [run.info.start_time] + sorted(m.timestamp for m in history)
    clauses = int(run.data.params.get("config.debug_mode_sample") or 0) or 5532
    for epoch, (start, end) in enumerate(zip(ends, ends[1:], strict=False)):
        seconds = (end - start) / 1000
        print(f"epoch {epoch}: {seconds:.1f} s with validation, {clauses / seconds:.1f} clauses/s")
    print(f"peak GPU memory of training: {run.data.metrics['peak_memory_mb']:,.0f} MB")
    gpu_memory = {k: v for k, v in run.data.metrics.items() if k.startswith("system/gpu")}
    print(f"GPU system metrics (last values): {gpu_memory or 'none logged'}")
    best = tagged_best_epoch(run_id)
    print(f"checkpoint of epoch {best}: {checkpoint_megabytes(run_id, best)} MB")
    module = load_epoch(run_id, best)
    print(f"load back: epoch {best} as {type(module).__name__}, {module.hparams.pooling} head")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="train on a balanced sample of N clauses")
    parser.add_argument("--data-path", help="local copy of coastalcph/lex_glue (or LEXGLUE_PATH)")
    parser.add_argument("--devices", type=int, nargs="+", default=[1], help="device counts")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("No CUDA device found: this check needs a GPU (e.g. a Colab T4). Nothing was run.")
        return 0
    for devices in args.devices:
        if devices > torch.cuda.device_count():
            print(f"{devices} devices asked for, {torch.cuda.device_count()} found: skipped.")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            run_check(args.limit, args.data_path, Path(tmp), devices)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
