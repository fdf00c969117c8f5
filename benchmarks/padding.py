"""Training throughput with dynamic, length-bucketed padding vs padding every clause to 128.

    python benchmarks/padding.py [--batches 30]

Both modes train the same `cpu`-preset module on the same number of batches of the real training
split, measured one after the other in one process, so the ratio is robust to a noisy machine.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from custom_module.config import preset
from custom_module.module import TransformerModule
from data import LexGlueDataModule


class PaddedToMaxLength(LexGlueDataModule):
    """Every clause padded to `max_length`, in shuffled file order: what dynamic padding saves."""

    def collate(self, items: list[dict]) -> dict[str, torch.Tensor]:
        ids = [{"input_ids": item["input_ids"]} for item in items]
        batch = self.tokenizer.pad(
            ids, padding="max_length", max_length=self.config.max_length, return_tensors="pt"
        )
        batch["labels"] = torch.tensor(np.stack([item["labels"] for item in items]))
        return dict(batch)

    def train_dataloader(self) -> DataLoader:
        generator = torch.Generator().manual_seed(self.config.seed)
        return DataLoader(
            self.split("train"),
            batch_size=self.config.batch_size,
            shuffle=True,
            generator=generator,
            collate_fn=self.collate,
        )


def clauses_per_second(padding: str, batches: int) -> float:
    config = preset("cpu")
    pl.seed_everything(config.seed)
    datamodule = (LexGlueDataModule if padding == "dynamic" else PaddedToMaxLength)(config)
    datamodule.setup()
    module = TransformerModule.from_config(config, datamodule)
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-4)
    loader = iter(datamodule.train_dataloader())
    seen, start = 0, time.perf_counter()
    for _ in range(batches):
        batch = next(loader)
        loss = module(batch["input_ids"], batch["attention_mask"], batch["labels"]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen += len(batch["labels"])
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=30, help="training batches per mode")
    args = parser.parse_args()
    dynamic = clauses_per_second("dynamic", args.batches)
    fixed = clauses_per_second("max_length", args.batches)
    print(f"dynamic, length-bucketed padding: {dynamic:6.1f} clauses/s")
    print(f"padded to max_length=128:         {fixed:6.1f} clauses/s")
    print(f"speed-up: {dynamic / fixed:.2f}x")


if __name__ == "__main__":
    main()
