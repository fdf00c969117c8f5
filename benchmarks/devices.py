"""One device against N, side by side in one run: notebook 02 with `devices=1`, then `devices=N`.

    python benchmarks/devices.py                        # workshop preset, 2 epochs, 1 vs 2
    python benchmarks/devices.py --preset smoke --devices 1 2 4

Each count trains the same preset (the global batch stays the preset's) into a throwaway sqlite
store, through `custom_module.train.train`, the path every run takes. It prints, per device
count, the training seconds per epoch (validation left out, from `TrainingCost`), rank 0's peak
memory, the best validation F1, and the speed relative to one device. On a CPU each rank is a
process of its own, so N ranks share the machine's cores.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import mlflow

from custom_module.config import MONITOR
from custom_module.train import train


def measure(preset: str, devices: int, max_epochs: int) -> dict:
    """Train once; the run's mean seconds per epoch, peak memory and best validation F1."""
    run_id = train(
        preset_name=preset, devices=devices, max_epochs=max_epochs, experiment_name="devices"
    )
    client = mlflow.MlflowClient()
    seconds = [m.value for m in client.get_metric_history(run_id, "train_seconds")]
    metrics = mlflow.get_run(run_id).data.metrics
    best_f1 = max(m.value for m in client.get_metric_history(run_id, MONITOR))
    return {
        "devices": devices,
        "seconds_per_epoch": sum(seconds) / len(seconds),
        "peak_memory_mb": metrics["peak_memory_mb"],
        "best_val_f1": best_f1,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="workshop")
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--max-epochs", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        rows = [measure(args.preset, n, args.max_epochs) for n in args.devices]
    base = rows[0]["seconds_per_epoch"]
    print(f"{args.preset} preset, {args.max_epochs} epochs, {os.cpu_count()} CPU cores")
    for row in rows:
        print(
            f"{row['devices']} device(s): {row['seconds_per_epoch']:.1f} s/epoch "
            f"({base / row['seconds_per_epoch']:.2f}x one device's speed), rank 0 peak "
            f"{row['peak_memory_mb']:,.0f} MB, best Val_F1 {row['best_val_f1']:.3f}"
        )


if __name__ == "__main__":
    main()
