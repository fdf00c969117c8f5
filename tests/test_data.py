"""LexGlueDataModule on the real UNFAIR-ToS copy."""

from __future__ import annotations

import numpy as np
import pytest

import data
from custom_module.config import TrainConfig, preset
from data import (
    LABEL_NAMES,
    LengthBucketBatchSampler,
    LengthSortedBatchSampler,
    LexGlueDataModule,
    load_unfair_tos,
    logit_shift,
    resolve_data_path,
    sample_rows,
    seeded_sample,
    to_targets,
)


@pytest.fixture(scope="module")
def datamodule() -> LexGlueDataModule:
    module = LexGlueDataModule(TrainConfig())
    module.setup()
    return module


def test_every_row_of_every_split_is_kept(datamodule):
    sizes = {split: len(datamodule.split(split)) for split in ("train", "validation", "test")}
    assert sizes == {"train": 5532, "validation": 2275, "test": 1607}


def test_validation_dataloader_yields_all_2275_rows(datamodule):
    batches = list(datamodule.val_dataloader())
    assert sum(len(batch["labels"]) for batch in batches) == 2275
    labels = np.concatenate([batch["labels"].numpy() for batch in batches]).ravel()
    assert labels.sum() == 230  # unfair validation clauses, as in PROVENANCE.md


def test_evaluation_batches_are_length_sorted_and_restore_file_order(datamodule):
    loader = datamodule.eval_dataloader("validation")
    batches = list(loader)
    widths = [batch["input_ids"].shape[1] for batch in batches]
    assert widths == sorted(widths)  # each batch pads to about its own clauses' length
    rows = np.concatenate([batch["labels"].numpy() for batch in batches])
    restored = loader.batch_sampler.restore_order(rows)
    assert np.array_equal(restored, datamodule.split("validation").targets)


def test_binary_target_is_one_when_any_category_is_present():
    assert to_targets([[], [3], [0, 6]], "binary").ravel().tolist() == [0, 1, 1]


def test_multilabel_target_is_multi_hot_over_eight_categories():
    targets = to_targets([[], [3, 1]], "multilabel")
    assert targets.shape == (2, len(LABEL_NAMES))
    assert targets[1].nonzero()[0].tolist() == [1, 3]


def test_unknown_task_is_rejected():
    with pytest.raises(ValueError, match="binary"):
        to_targets([[]], "multiclass")


def test_pos_weight_is_the_fair_to_unfair_ratio_of_train(datamodule):
    assert datamodule.pos_weight() == [pytest.approx(4902 / 630, abs=1e-4)]


def test_missing_data_folder_says_how_to_fix_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="LEXGLUE_PATH"):
        resolve_data_path(str(tmp_path / "nowhere"))


def test_folder_without_parquet_files_names_the_missing_splits(tmp_path):
    (tmp_path / "unfair_tos").mkdir()
    (tmp_path / "unfair_tos" / "train-00000-of-00001.parquet").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="validation"):
        resolve_data_path(str(tmp_path))


def test_unset_path_falls_back_to_the_hub_id(monkeypatch, tmp_path):
    monkeypatch.delenv("LEXGLUE_PATH", raising=False)
    monkeypatch.setattr(data, "SHARED_DATA", tmp_path / "no-shared-copy")
    assert resolve_data_path() == "coastalcph/lex_glue"


def test_unset_path_uses_the_copy_beside_the_repository(monkeypatch, tmp_path):
    shared = tmp_path / "shared" / "data" / "lex_glue"
    (shared / "unfair_tos").mkdir(parents=True)
    for split in ("train", "validation", "test"):
        (shared / "unfair_tos" / f"{split}-00000-of-00001.parquet").write_bytes(b"")
    monkeypatch.delenv("LEXGLUE_PATH", raising=False)
    monkeypatch.setattr(data, "SHARED_DATA", shared)
    assert resolve_data_path() == str(shared)


def test_unknown_split_is_rejected(datamodule):
    with pytest.raises(ValueError, match="validation"):
        datamodule.split("dev")


@pytest.mark.parametrize("text", ["", "   ", None, 3])
def test_empty_or_non_string_clause_is_rejected(datamodule, text):
    with pytest.raises(ValueError, match="Clause 1"):
        datamodule.encode(["a fair clause .", text])


def test_loaded_dataset_has_text_and_labels_and_no_empty_text():
    dataset = load_unfair_tos()
    assert dataset["test"].column_names == ["text", "labels"]
    assert all(text.strip() for text in dataset["test"]["text"])


def test_balanced_sample_is_half_unfair_and_seeded():
    targets = to_targets(list(load_unfair_tos()["train"]["labels"]), "binary")
    sample = seeded_sample(targets, 64, seed=1, balanced=True)
    assert targets[sample].sum() == 32
    assert np.array_equal(sample, seeded_sample(targets, 64, seed=1, balanced=True))
    assert not np.array_equal(sample, seeded_sample(targets, 64, seed=2, balanced=True))


def test_training_is_balanced_while_validation_and_test_keep_their_real_share():
    dataset = load_unfair_tos()
    config = preset("workshop", debug_mode_sample=600)
    shares = {}
    for split in ("train", "validation", "test"):
        targets = to_targets(list(dataset[split]["labels"]), "binary")
        rows = sample_rows(split, targets, config)
        assert np.array_equal(rows, sample_rows(split, targets, config))  # seeded
        shares[split] = (targets[rows].mean(), targets.mean(), len(rows))
    assert shares["train"][0] == 0.5 and shares["train"][2] == config.debug_mode_sample
    assert shares["validation"][0] == pytest.approx(shares["validation"][1], abs=1 / 800)
    assert shares["validation"][2] == 800
    assert shares["test"][2] == 1607  # test_sample_size None: every clause


def test_the_logit_shift_gives_the_full_splits_odds_back():
    full = np.array([[1.0]] * 10 + [[0.0]] * 90)  # 1 in 10 unfair
    balanced = np.array([[1.0]] * 10 + [[0.0]] * 10)
    (shift,) = logit_shift(full, balanced)
    assert shift == pytest.approx(np.log(0.1 / 0.9))  # from odds 1:1 to 1:9
    assert logit_shift(full, full) == [0.0]


def test_bucketed_batches_cover_each_row_once_and_repeat_per_epoch():
    lengths = np.random.default_rng(0).integers(5, 120, size=1000)
    sampler = LengthBucketBatchSampler(lengths, batch_size=32, seed=7, pool_batches=10)
    epoch0 = list(sampler)
    assert sorted(i for batch in epoch0 for i in batch) == list(range(1000))
    assert epoch0 == list(sampler)
    sampler.set_epoch(1)
    assert epoch0 != list(sampler)


@pytest.mark.parametrize("size", [1000, 1001, 1024])  # a last global batch of 8, 9 and none
@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_split_the_one_device_batches_with_equal_counts(size, world_size):
    lengths = np.random.default_rng(0).integers(5, 120, size=size)
    one = list(LengthBucketBatchSampler(lengths, batch_size=32, seed=7))
    ranks = [
        LengthBucketBatchSampler(lengths, 32, seed=7, rank=rank, world_size=world_size)
        for rank in range(world_size)
    ]
    shards = [list(sampler) for sampler in ranks]
    assert {len(shard) for shard in shards} == {len(one)} == {len(s) for s in ranks}
    for step, batch in enumerate(one):  # each global batch, split across the ranks, disjointly
        parts = [shard[step] for shard in shards]
        assert sorted(i for part in parts for i in part) == sorted(batch)
        assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_a_global_batch_smaller_than_the_ranks_is_left_out_on_every_rank():
    lengths = list(range(33))  # batches of 32 and 1: the single clause cannot go to 2 ranks
    shards = [list(LengthBucketBatchSampler(lengths, 32, 0, rank=r, world_size=2)) for r in (0, 1)]
    assert [len(shard) for shard in shards] == [1, 1]  # one step each, not one rank a step more
    rows = [i for shard in shards for batch in shard for i in batch]
    assert len(rows) == len(set(rows)) == 32


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_evaluation_batches_score_every_clause_once_across_ranks(world_size):
    lengths = np.random.default_rng(1).integers(5, 120, size=999)
    shards = [
        list(LengthSortedBatchSampler(lengths, 64, rank=rank, world_size=world_size))
        for rank in range(world_size)
    ]
    rows = sorted(i for shard in shards for batch in shard for i in batch)
    assert rows == list(range(999))  # no clause twice: no padding duplicates in the scores
    one_device = list(LengthSortedBatchSampler(lengths, 64))
    for rank, shard in enumerate(shards):  # the one-device batches, dealt round the ranks
        assert shard == one_device[rank::world_size]


def test_evaluation_refuses_more_ranks_than_batches():
    with pytest.raises(ValueError, match="too few batches for 3 ranks"):
        LengthSortedBatchSampler(list(range(100)), 64, rank=2, world_size=3)


def test_dynamic_padding_pads_far_less_than_max_length(datamodule):
    batch_widths = [batch["input_ids"].shape[1] for batch in datamodule.train_dataloader()]
    assert max(batch_widths) <= datamodule.config.max_length
    # Mean clause length is ~38 tokens: bucketed batches stay close to it, not to 128.
    assert np.mean(batch_widths) < 0.5 * datamodule.config.max_length


def test_batches_carry_attention_masks_that_match_padding(datamodule):
    batch = next(iter(datamodule.val_dataloader()))
    pad_id = datamodule.tokenizer.pad_token_id
    assert ((batch["input_ids"] != pad_id) == batch["attention_mask"].bool()).all()
