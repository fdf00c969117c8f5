"""LexGLUE UNFAIR-ToS from parquet (hub or a local copy) to batches: the blog's `data.py`. Padded
per batch in length buckets: ~3x faster on CPU than to `max_length` (benchmarks/padding.py)."""

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from datasets import DatasetDict, load_dataset
from torch.utils.data import DataLoader, Dataset, Sampler
from transformers import AutoTokenizer

from custom_module.config import TrainConfig, resolve_model_path

HUB_ID = "coastalcph/lex_glue"
# A copy beside the repository (CI machines, workshops) is used without being configured.
SHARED_DATA = Path(__file__).resolve().parents[1] / "shared" / "data" / "lex_glue"
CONFIG_NAME = "unfair_tos"
SPLITS = ("train", "validation", "test")
LABEL_NAMES = ("Limitation of liability", "Unilateral termination", "Unilateral change")
LABEL_NAMES += ("Content removal", "Contract by using", "Choice of law", "Jurisdiction")
LABEL_NAMES += ("Arbitration",)
TASKS = ("binary", "multilabel")


def hub_offline(environ: Mapping[str, str] | None = None) -> bool:
    """Whether `datasets` stays off the hub: HF_DATASETS_OFFLINE if set, else HF_HUB_OFFLINE."""
    environ = os.environ if environ is None else environ
    value = environ.get("HF_DATASETS_OFFLINE", environ.get("HF_HUB_OFFLINE") or "")
    return value.upper() in {"1", "ON", "YES", "TRUE"}  # "on", as huggingface_hub reads it


@dataclass(frozen=True)
class DataSource:
    """Where UNFAIR-ToS will come from, and why."""

    location: str  # a local folder (also `/Volumes/...` on Databricks), or the hub id
    origin: str  # "data_path", "LEXGLUE_PATH", "shared copy" or "hub"
    offline: bool  # True when the hub is not needed or not allowed

    @property
    def local(self) -> bool:
        return self.origin != "hub"

    def describe(self) -> str:
        """One line for a notebook: what will be read, and whether the hub is involved."""
        if self.local:
            folder = Path(self.location).name  # notebook outputs should not carry machine paths
            return f"UNFAIR-ToS from a local copy ({self.origin}: .../{folder}); no hub needed."
        if self.offline:
            return (
                f"UNFAIR-ToS from the hub cache only ({HUB_ID}, HF_HUB_OFFLINE is on); "
                "set LEXGLUE_PATH to a local copy if it was never downloaded here."
            )
        return f"UNFAIR-ToS from the Hugging Face hub ({HUB_ID}); needs the network once."


def data_source(
    data_path: str | None = None,
    environ: Mapping[str, str] | None = None,
    shared_copy: Path | None = None,
) -> DataSource:
    """`data_path`, else `LEXGLUE_PATH`, else `../shared/data/lex_glue` beside the repository,
    else the hub (only its cache when offline). `resolve_data_path` checks the paths."""
    environ = os.environ if environ is None else environ
    shared_copy = SHARED_DATA if shared_copy is None else shared_copy
    if data_path:
        return DataSource(str(data_path), "data_path", offline=True)
    if environ.get("LEXGLUE_PATH"):
        return DataSource(environ["LEXGLUE_PATH"], "LEXGLUE_PATH", offline=True)
    if shared_copy.is_dir():
        return DataSource(str(shared_copy), "shared copy", offline=True)
    return DataSource(HUB_ID, "hub", offline=hub_offline(environ))


def resolve_data_path(data_path: str | None = None) -> str:
    """Where to load UNFAIR-ToS from; local paths are checked so a typo is not sent to the hub."""
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
    return multi_hot.max(axis=1, keepdims=True) if task == "binary" else multi_hot


def seeded_sample(targets: np.ndarray, size: int, seed: int, balanced: bool) -> np.ndarray:
    """Seeded sample indices in file order: up to half unfair if `balanced`, else stratified."""
    rng = np.random.default_rng(seed)
    is_unfair = targets.max(axis=1) > 0
    unfair, fair = np.flatnonzero(is_unfair), np.flatnonzero(~is_unfair)
    size = min(size, len(targets))
    n_unfair = min(len(unfair), size // 2) if balanced else round(size * is_unfair.mean())
    n_fair = min(len(fair), size - n_unfair)
    picks = rng.choice(unfair, n_unfair, replace=False), rng.choice(fair, n_fair, replace=False)
    return np.sort(np.concatenate(picks))


def sample_rows(split: str, targets: np.ndarray, config: TrainConfig) -> np.ndarray:
    """The rows of `split` a run uses: a balanced training sample (learns faster), validation and
    test at their real share of unfair clauses (stratified, or all): scores read as on real text."""
    sizes = {"train": config.debug_mode_sample, "validation": config.val_sample_size}
    size = sizes.get(split, config.test_sample_size)
    if size is None:
        return np.arange(len(targets))
    return seeded_sample(targets, size, config.seed, balanced=split == "train")


def logit_shift(full: np.ndarray, sampled: np.ndarray) -> list[float]:
    """Per label, its log-odds in `full` minus in `sampled`: added to the logits of a model trained
    on the sample, the full split's odds (the prior-shift correction, Saerens et al. 2002)."""
    shares = np.clip([full.mean(axis=0), sampled.mean(axis=0)], 1e-6, 1 - 1e-6)
    log_odds = np.log(shares / (1 - shares))
    return (log_odds[0] - log_odds[1]).round(6).tolist()


class EncodedClauses(Dataset):
    """Token ids and float targets of one split; items are dicts for `collate`."""

    def __init__(self, input_ids: list[list[int]], targets: np.ndarray | None = None) -> None:
        self.input_ids, self.targets = input_ids, targets

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
    """Shuffled batches of similar-length clauses (sorted within pools of `pool_batches` batches),
    seeded by `seed + epoch` so a resumed run sees the same batches. Under DDP each rank takes its
    share of every batch, so all step equally; a batch smaller than `world_size` is left out."""

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int,
        pool_batches: int = 50,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size, self.seed, self.pool_size = batch_size, seed, batch_size * pool_batches
        self.rank, self.world_size, self.epoch = rank, world_size, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        full, rest = divmod(len(self.lengths), self.batch_size)
        return full + (rest >= self.world_size)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng(self.seed + self.epoch)
        order = rng.permutation(len(self.lengths))
        batches = []
        for start in range(0, len(order), self.pool_size):
            pool = order[start : start + self.pool_size]
            pool = pool[np.argsort(self.lengths[pool], kind="stable")]
            batches += [pool[i : i + self.batch_size] for i in range(0, len(pool), self.batch_size)]
        for batch_index in rng.permutation(len(batches)):
            if len(batches[batch_index]) >= self.world_size:
                yield np.array_split(batches[batch_index], self.world_size)[self.rank].tolist()


class LengthSortedBatchSampler(Sampler[list[int]]):
    """Length-sorted evaluation batches (less padding); `order` is the output order, for
    `restore_order`. Under DDP each rank takes every `world_size`-th batch: each clause once."""

    def __init__(
        self, lengths: Sequence[int], batch_size: int, rank: int = 0, world_size: int = 1
    ) -> None:
        self.order = np.argsort(np.asarray(lengths), kind="stable")
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        if len(self) == 0 and len(self.order):
            raise ValueError(f"{len(self.order)} clauses: too few batches for {world_size} ranks.")

    def __len__(self) -> int:
        return len(range(self.rank, -(-len(self.order) // self.batch_size), self.world_size))

    def __iter__(self) -> Iterator[list[int]]:
        step = self.batch_size * self.world_size
        for start in range(self.rank * self.batch_size, len(self.order), step):
            yield self.order[start : start + self.batch_size].tolist()

    def restore_order(self, outputs: np.ndarray) -> np.ndarray:
        """Rows of `outputs` (in the order batches came out) back in file order."""
        restored = np.empty_like(outputs)
        restored[self.order] = outputs
        return restored


class LexGlueDataModule(pl.LightningDataModule):
    """UNFAIR-ToS for a `binary` (fair vs unfair) or `multilabel` (8 categories) classifier, built
    from a `TrainConfig` or, as in the blog, its fields by name (`max_length=128`)."""

    def __init__(self, config: TrainConfig | None = None, **fields) -> None:
        super().__init__()
        config = (config or TrainConfig()).replace(**fields)
        if config.num_classes not in (2, len(LABEL_NAMES)):
            raise ValueError(
                f"num_classes={config.num_classes}: use 2 (fair vs unfair) or "
                f"{len(LABEL_NAMES)} (one output per unfairness category)."
            )
        self.config = config
        self.tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(config.pretrained_model))
        self.splits: dict[str, EncodedClauses] = {}
        self.texts: dict[str, list[str]] = {}
        self.categories: dict[str, np.ndarray] = {}  # clauses x 8 for any task: recall per category
        self.training_shift: list[float] = []  # `logit_shift` of the training sample

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        config = self.config
        dataset = load_unfair_tos(config.data_path)
        for split in SPLITS:
            texts, labels = list(dataset[split]["text"]), list(dataset[split]["labels"])
            targets, categories = to_targets(labels, config.task), to_targets(labels, "multilabel")
            keep = sample_rows(split, targets, config)
            if split == "train":
                self.training_shift = logit_shift(targets, targets[keep])
            self.texts[split] = [texts[i] for i in keep]
            self.categories[split] = categories[keep]
            self.splits[split] = EncodedClauses(self.encode(self.texts[split]), targets[keep])

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids, truncated to `max_length`; padding happens per batch in `collate`."""
        for row, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"Clause {row} is empty or not a string: {text!r}.")
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.config.max_length)
        return encoded["input_ids"]

    def pos_weight(self) -> list[float]:
        """Fair/unfair ratio per label in the training split, for a class-weighted loss."""
        targets = self.split("train").targets
        positives = targets.sum(axis=0)
        return ((len(targets) - positives) / np.maximum(positives, 1)).round(4).tolist()

    def prior_shift(self) -> list[float]:
        """Per label, the correction for the training sample's odds (`logit_shift`, <= 0)."""
        self.setup()
        return self.training_shift

    def split(self, name: str) -> EncodedClauses:
        if name not in SPLITS:
            raise ValueError(f"Unknown split {name!r}; choose one of {SPLITS}.")
        self.setup()
        return self.splits[name]

    def collate(self, items: list[dict]) -> dict[str, torch.Tensor]:
        """Pad to the batch's longest clause."""
        ids = [{"input_ids": item["input_ids"]} for item in items]
        batch = self.tokenizer.pad(ids, return_tensors="pt")
        if "labels" in items[0]:
            batch["labels"] = torch.tensor(np.stack([item["labels"] for item in items]))
        return dict(batch)

    def ranks(self) -> dict[str, int]:
        """This process's `rank` and the `world_size` while a (DDP) Trainer runs; afterwards (a
        prediction of its own, say) or alone, every row."""
        trainer = self.trainer
        if trainer is None or trainer.state.status != "running":
            return {}
        return {"rank": trainer.global_rank, "world_size": trainer.world_size}

    def train_dataloader(self) -> DataLoader:
        """`config.batch_size` is the global batch: with N devices each rank takes 1/N of it."""
        data, config = self.split("train"), self.config
        sampler = LengthBucketBatchSampler(
            data.lengths(), config.batch_size, config.seed, **self.ranks()
        )
        return DataLoader(
            data, batch_sampler=sampler, collate_fn=self.collate, num_workers=config.num_workers
        )

    def eval_dataloader(self, split: str) -> DataLoader:
        """Length-sorted, ~2x faster on CPU; `batch_sampler.restore_order` restores file order."""
        data, config = self.split(split), self.config
        sampler = LengthSortedBatchSampler(data.lengths(), config.batch_size * 2, **self.ranks())
        return DataLoader(
            data, batch_sampler=sampler, collate_fn=self.collate, num_workers=config.num_workers
        )

    def val_dataloader(self) -> DataLoader:
        return self.eval_dataloader("validation")

    def test_dataloader(self) -> DataLoader:
        return self.eval_dataloader("test")

    def texts_dataloader(self, texts: Sequence[str]) -> DataLoader:
        """Batches of raw clauses (no labels), for prediction on new text."""
        data = EncodedClauses(self.encode(texts))
        return DataLoader(data, batch_size=self.config.batch_size * 2, collate_fn=self.collate)
