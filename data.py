"""LexGLUE UNFAIR-ToS as a Lightning data module.

`LexGlueDataModule` owns everything between the parquet files and the model: finding the data
(hub id or a local copy in the hub layout), validating it, turning label lists into targets for
the chosen task, tokenizing once, and batching with dynamic padding. Training batches are
bucketed by length so that a batch of short clauses is not padded to the length of a long one:
on CPU this is about 3x faster than padding every clause to `max_length`
(`benchmarks/padding.py` measures it).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from datasets import DatasetDict, load_dataset
from torch.utils.data import DataLoader, Dataset, Sampler
from transformers import AutoTokenizer

from custom_module.config import TrainConfig
from custom_module.model_source import resolve_model_path

HUB_ID = "coastalcph/lex_glue"
CONFIG_NAME = "unfair_tos"
SPLITS = ("train", "validation", "test")
LABEL_NAMES = (
    "Limitation of liability",
    "Unilateral termination",
    "Unilateral change",
    "Content removal",
    "Contract by using",
    "Choice of law",
    "Jurisdiction",
    "Arbitration",
)
TASKS = ("binary", "multilabel")
PADDING_MODES = ("dynamic", "max_length")


def resolve_data_path(data_path: str | None = None) -> str:
    """Return where to load UNFAIR-ToS from: the argument, else `LEXGLUE_PATH`, else a copy at
    `../shared/data/lex_glue` beside the repository, else the hub id
    (`custom_module.platforms.data_source` makes the choice).

    A local path (a `/Volumes/...` folder on Databricks too) is checked here, so a typo fails
    with a message instead of a hub lookup.
    """
    # Imported here: `custom_module` imports this module while it initializes.
    from custom_module.platforms import data_source

    source = data_source(data_path)
    if not source.local:
        return source.location
    folder = Path(source.location).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"LexGLUE data folder {str(folder)!r} (from {source.origin}) does not exist. Point "
            f"`data_path` or the LEXGLUE_PATH environment variable at a copy of {HUB_ID} in the "
            f"hub layout (a folder holding {CONFIG_NAME}/train-*.parquet), or leave both unset "
            "to download from the Hugging Face hub."
        )
    missing = [s for s in SPLITS if not list((folder / CONFIG_NAME).glob(f"{s}-*.parquet"))]
    if missing:
        raise FileNotFoundError(
            f"{str(folder)!r} is not a copy of {HUB_ID} in the hub layout: no parquet file for "
            f"split(s) {missing} under {CONFIG_NAME}/. Expected files like "
            f"{CONFIG_NAME}/train-00000-of-00001.parquet."
        )
    return str(folder)


def hub_unreachable_message() -> str:
    """Both ways out when the hub cannot serve the data: a local copy, or the network."""
    from custom_module.platforms import hub_offline

    reason = "offline mode is on (HF_HUB_OFFLINE=1)" if hub_offline() else "it could not be reached"
    return (
        f"Could not load {HUB_ID} from the Hugging Face hub: {reason}, and it is not in the "
        "local cache. Either set LEXGLUE_PATH (or `data_path`) to a local copy in the hub layout, "
        f"a folder holding {CONFIG_NAME}/train-*.parquet (on Databricks, a /Volumes/... folder; "
        f"make one where the hub is reachable with `hf download {HUB_ID} --repo-type dataset "
        f"--include '{CONFIG_NAME}/*' --local-dir lex_glue`), or connect to the network and "
        "unset HF_HUB_OFFLINE."
    )


def load_unfair_tos(data_path: str | None = None) -> DatasetDict:
    """Load and validate the three UNFAIR-ToS splits (see `resolve_data_path` for the source)."""
    location = resolve_data_path(data_path)
    try:
        dataset = load_dataset(location, CONFIG_NAME)
    except ConnectionError as error:  # what `datasets` raises offline or without network
        if location != HUB_ID:
            raise
        raise ConnectionError(hub_unreachable_message()) from error
    for split in SPLITS:
        if split not in dataset:
            raise ValueError(f"UNFAIR-ToS has no {split!r} split; found {sorted(dataset)}.")
        columns = set(dataset[split].column_names)
        if not {"text", "labels"} <= columns:
            raise ValueError(
                f"Split {split!r} must have columns 'text' and 'labels'; found {sorted(columns)}."
            )
        for row, text in enumerate(dataset[split]["text"]):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"Split {split!r} row {row} has an empty or non-string text.")
    return dataset


def to_targets(label_lists: Sequence[Sequence[int]], task: str) -> np.ndarray:
    """Turn LexGLUE label lists into float targets: (n, 1) unfair-or-not, or (n, 8) multi-hot."""
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}; choose one of {TASKS}.")
    multi_hot = np.zeros((len(label_lists), len(LABEL_NAMES)), dtype=np.float32)
    for row, labels in enumerate(label_lists):
        multi_hot[row, list(labels)] = 1.0
    if task == "binary":
        return multi_hot.max(axis=1, keepdims=True)
    return multi_hot


def balanced_sample(targets: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Indices of a seeded sample with (up to) half unfair and half fair clauses, in file order."""
    rng = np.random.default_rng(seed)
    unfair = np.flatnonzero(targets.max(axis=1) > 0)
    fair = np.flatnonzero(targets.max(axis=1) == 0)
    n_unfair = min(len(unfair), size // 2)
    n_fair = min(len(fair), size - n_unfair)
    chosen = np.concatenate(
        [rng.choice(unfair, n_unfair, replace=False), rng.choice(fair, n_fair, replace=False)]
    )
    return np.sort(chosen)


class EncodedClauses(Dataset):
    """Token ids and float targets of one split; items are dicts for `collate`."""

    def __init__(self, input_ids: list[list[int]], targets: np.ndarray | None = None) -> None:
        self.input_ids = input_ids
        self.targets = targets

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, index: int) -> dict:
        item = {"input_ids": self.input_ids[index]}
        if self.targets is not None:
            item["labels"] = self.targets[index]
        return item

    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.input_ids]


class LengthBucketBatchSampler(Sampler[list[int]]):
    """Shuffled batches of clauses of similar length.

    Indices are shuffled, cut into pools of `pool_batches` batches, sorted by length inside each
    pool, cut into batches, and the batches shuffled again. The shuffle depends only on
    `seed + epoch` (Lightning calls `set_epoch`), so a resumed run sees the same batches as an
    uninterrupted one.
    """

    def __init__(
        self, lengths: Sequence[int], batch_size: int, seed: int, pool_batches: int = 50
    ) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.pool_size = batch_size * pool_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng(self.seed + self.epoch)
        order = rng.permutation(len(self.lengths))
        batches = []
        for start in range(0, len(order), self.pool_size):
            pool = order[start : start + self.pool_size]
            pool = pool[np.argsort(self.lengths[pool], kind="stable")]
            batches += [pool[i : i + self.batch_size] for i in range(0, len(pool), self.batch_size)]
        for batch_index in rng.permutation(len(batches)):
            yield batches[batch_index].tolist()


class LengthSortedBatchSampler(Sampler[list[int]]):
    """Batches of clauses sorted by length, for evaluation: a batch of short clauses is not
    padded to the length of a long one. `order` holds the rows in the order they come out, so
    predictions can be put back in file order (`restore_order`)."""

    def __init__(self, lengths: Sequence[int], batch_size: int) -> None:
        self.order = np.argsort(np.asarray(lengths), kind="stable")
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-len(self.order) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        for start in range(0, len(self.order), self.batch_size):
            yield self.order[start : start + self.batch_size].tolist()

    def restore_order(self, outputs: np.ndarray) -> np.ndarray:
        """Rows of `outputs` (in the order batches came out) back in file order."""
        restored = np.empty_like(outputs)
        restored[self.order] = outputs
        return restored


class LexGlueDataModule(pl.LightningDataModule):
    """UNFAIR-ToS for a `binary` (fair vs unfair) or `multilabel` (8 categories) classifier.

    No row is dropped from any split. `sample_size` takes a seeded, balanced sample of each split
    for quick runs (the blog's debug mode); `None` uses every row.
    """

    def __init__(
        self,
        tokenizer_path: str,
        data_path: str | None = None,
        task: str = TrainConfig.task,
        batch_size: int = TrainConfig.batch_size,
        max_length: int = TrainConfig.max_length,
        padding: str = "dynamic",
        sample_size: int | None = TrainConfig.sample_size,
        seed: int = TrainConfig.seed,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"Unknown task {task!r}; choose one of {TASKS}.")
        if padding not in PADDING_MODES:
            raise ValueError(f"Unknown padding {padding!r}; choose one of {PADDING_MODES}.")
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
        self.data_path = data_path
        self.task = task
        self.batch_size = batch_size
        self.max_length = max_length
        self.padding = padding
        self.sample_size = sample_size
        self.seed = seed
        self.num_workers = num_workers
        self.splits: dict[str, EncodedClauses] = {}
        self.texts: dict[str, list[str]] = {}
        # Each clause's categories (clauses x 8), whatever the task: evaluation reports
        # recall per unfair category even for the binary model.
        self.categories: dict[str, np.ndarray] = {}

    @classmethod
    def from_config(cls, config: TrainConfig) -> LexGlueDataModule:
        """The data module a `TrainConfig` describes, with the model's own tokenizer."""
        return cls(
            tokenizer_path=resolve_model_path(config.model_name),
            data_path=config.data_path,
            task=config.task,
            batch_size=config.batch_size,
            max_length=config.max_length,
            sample_size=config.sample_size,
            seed=config.seed,
        )

    @property
    def num_labels(self) -> int:
        return 1 if self.task == "binary" else len(LABEL_NAMES)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        dataset = load_unfair_tos(self.data_path)
        for split in SPLITS:
            texts = list(dataset[split]["text"])
            labels = list(dataset[split]["labels"])
            targets = to_targets(labels, self.task)
            categories = to_targets(labels, "multilabel")
            if self.sample_size is not None:
                keep = balanced_sample(targets, self.sample_size, self.seed)
                texts, targets, categories = (
                    [texts[i] for i in keep],
                    targets[keep],
                    categories[keep],
                )
            self.texts[split] = texts
            self.categories[split] = categories
            self.splits[split] = EncodedClauses(self.encode(texts), targets)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids, truncated to `max_length`; padding happens per batch in `collate`."""
        for row, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"Clause {row} is empty or not a string: {text!r}.")
        return self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]

    def pos_weight(self) -> list[float]:
        """Fair/unfair ratio per label in the training split, for a class-weighted loss."""
        targets = self.split("train").targets
        positives = targets.sum(axis=0)
        return ((len(targets) - positives) / np.maximum(positives, 1)).round(4).tolist()

    def split(self, name: str) -> EncodedClauses:
        if name not in SPLITS:
            raise ValueError(f"Unknown split {name!r}; choose one of {SPLITS}.")
        self.setup()
        return self.splits[name]

    def collate(self, items: list[dict]) -> dict[str, torch.Tensor]:
        padding = "longest" if self.padding == "dynamic" else "max_length"
        batch = self.tokenizer.pad(
            [{"input_ids": item["input_ids"]} for item in items],
            padding=padding,
            max_length=self.max_length,
            return_tensors="pt",
        )
        if "labels" in items[0]:
            batch["labels"] = torch.tensor(np.stack([item["labels"] for item in items]))
        return dict(batch)

    def train_dataloader(self) -> DataLoader:
        data = self.split("train")
        if self.padding == "dynamic":
            sampler = LengthBucketBatchSampler(data.lengths(), self.batch_size, self.seed)
            return DataLoader(
                data, batch_sampler=sampler, collate_fn=self.collate, num_workers=self.num_workers
            )
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            data,
            batch_size=self.batch_size,
            shuffle=True,
            generator=generator,
            collate_fn=self.collate,
            num_workers=self.num_workers,
        )

    def eval_dataloader(self, split: str) -> DataLoader:
        """Length-sorted batches, about twice as fast as file order on CPU; the epoch metrics
        do not depend on the order, and `batch_sampler.restore_order` puts predictions back in
        line with `self.texts[split]`."""
        data = self.split(split)
        return DataLoader(
            data,
            batch_sampler=LengthSortedBatchSampler(data.lengths(), self.batch_size * 2),
            collate_fn=self.collate,
            num_workers=self.num_workers,
        )

    def val_dataloader(self) -> DataLoader:
        return self.eval_dataloader("validation")

    def test_dataloader(self) -> DataLoader:
        return self.eval_dataloader("test")

    def predict_dataloader(self) -> DataLoader:
        return self.eval_dataloader("test")

    def texts_dataloader(self, texts: Sequence[str]) -> DataLoader:
        """Batches of raw clauses (no labels), for prediction on new text."""
        return DataLoader(
            EncodedClauses(self.encode(texts)),
            batch_size=self.batch_size * 2,
            collate_fn=self.collate,
        )
