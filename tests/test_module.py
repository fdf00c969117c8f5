"""TransformerModule: what trains, dropout, metrics against sklearn, checkpoints."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from sklearn.metrics import f1_score, precision_score, recall_score
from torch import nn

from custom_module.config import ATTENTION_TARGETS, MINILM, TrainConfig, preset
from custom_module.module import MODEL_FIELDS, TransformerModule, mean_pool
from data import LexGlueDataModule


@pytest.fixture(scope="module")
def smoke_parts() -> tuple:
    config = preset("smoke")
    pl.seed_everything(config.seed)
    datamodule = LexGlueDataModule(config)
    datamodule.setup()
    return config, datamodule, TransformerModule.from_config(config, datamodule)


def quiet_trainer(**kwargs) -> pl.Trainer:
    return pl.Trainer(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **kwargs,
    )


def test_only_lora_matrices_and_the_head_train(smoke_parts):
    module = smoke_parts[2]
    trainable = module.trainable_state_keys()
    assert trainable and all("lora_" in k or k.startswith("head.") for k in trainable)
    assert {"head.weight", "head.bias"} <= trainable
    count, total = module.trainable_parameter_count()
    assert count < 0.05 * total


def test_the_blog_head_trains_inside_the_hugging_face_model():
    module = TransformerModule(pooling="cls", lora_target_modules=ATTENTION_TARGETS)
    trainable = module.trainable_state_keys()
    assert module.head is None
    assert trainable and all("lora_" in k or "modules_to_save" in k for k in trainable)
    assert len(module.lora_layers()) == 6 * 3 + 1  # query, key, value of 6 blocks, the pooler


def test_an_unknown_pooling_is_refused():
    with pytest.raises(ValueError, match="Unknown pooling 'max'"):
        TransformerModule(pooling="max")


def test_mean_pooling_ignores_padding():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert mean_pool(hidden, mask).tolist() == [[2.0, 3.0]]


def test_padding_a_clause_does_not_change_its_logit(smoke_parts):
    module = smoke_parts[2].eval()  # no dropout: the two passes must be comparable
    ids = torch.tensor([[101, 2057, 2089, 2689, 2122, 3408, 102]])
    padded = torch.cat([ids, torch.zeros(1, 5, dtype=torch.long)], dim=1)
    with torch.no_grad():
        alone = module(ids, torch.ones_like(ids)).logits
        with_padding = module(padded, (padded != 0).long()).logits
    module.train()
    assert torch.allclose(alone, with_padding, atol=1e-5)


def test_hparams_hold_the_hub_name_not_a_local_path(smoke_parts):
    module = smoke_parts[2]
    assert module.hparams.pretrained_model == MINILM
    assert "site-packages" not in str(dict(module.hparams))


def test_multilabel_task_has_one_logit_per_category():
    module = TransformerModule(num_classes=8)
    logits = module(torch.tensor([[101, 2023, 102]]), torch.ones(1, 3, dtype=torch.long)).logits
    assert logits.shape == (1, 8)


def test_the_blogs_forward_returns_the_loss_against_its_label(smoke_parts):
    module = smoke_parts[2].eval()
    ids, mask = (
        torch.tensor([[101, 2023, 102], [101, 2057, 102]]),
        torch.ones(2, 3, dtype=torch.long),
    )
    label = torch.tensor([1, 0])  # one class per clause, as the blog's batches hold it
    with torch.no_grad():
        output = module(ids, mask, label)
    module.train()
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        output.logits.squeeze(1), label.float()
    )
    assert output.logits.shape == (2, 1) and torch.isclose(output.loss, expected)
    assert module(ids, mask).loss is None


class DropoutProbe(pl.Callback):
    """Records whether every dropout layer was in training mode at each training batch."""

    def __init__(self) -> None:
        self.modes: list[bool] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        dropouts = [m for m in pl_module.modules() if isinstance(m, nn.Dropout)]
        self.modes.append(bool(dropouts) and all(m.training for m in dropouts))


def test_dropout_is_active_while_training(smoke_parts):
    config, datamodule, _ = smoke_parts
    module = TransformerModule.from_config(config, datamodule)
    probe = DropoutProbe()
    quiet_trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1, callbacks=[probe]).fit(
        module, datamodule=datamodule
    )
    assert probe.modes == [True, True]


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_encoder_dropout_sets_every_dropout_of_the_encoder_and_head(pooling):
    module = TransformerModule(pooling=pooling, encoder_dropout=0.2)
    probabilities = {m.p for m in module.modules() if isinstance(m, nn.Dropout)}
    assert probabilities == {0.2}
    # Attention's dropout is not an nn.Dropout: it is handed to scaled_dot_product_attention.
    assert module.model.base_model.model.config.attention_probs_dropout_prob == 0.2


def test_epoch_metrics_equal_sklearn_on_the_same_predictions(smoke_parts):
    _, datamodule, module = smoke_parts
    trainer = quiet_trainer()
    logged = trainer.validate(module, dataloaders=datamodule.val_dataloader(), verbose=False)[0]
    loader = datamodule.val_dataloader()  # length-sorted: put predictions back in file order
    probabilities = torch.cat(trainer.predict(module, dataloaders=loader)).numpy()
    predicted = (loader.batch_sampler.restore_order(probabilities).ravel() > 0.5).astype(int)
    truth = datamodule.split("validation").targets.ravel()
    assert logged["Val_F1_Score"] == pytest.approx(f1_score(truth, predicted), abs=1e-6)
    assert logged["Val_Precision"] == pytest.approx(
        precision_score(truth, predicted, zero_division=0), abs=1e-6
    )
    assert logged["Val_Recall"] == pytest.approx(recall_score(truth, predicted), abs=1e-6)


def test_predict_step_returns_one_probability_per_clause(smoke_parts):
    _, datamodule, module = smoke_parts
    batch = next(iter(datamodule.texts_dataloader(["we may terminate your account at any time ."])))
    probabilities = module.predict_step(batch, 0)
    assert probabilities.shape == (1, 1)
    assert 0.0 <= probabilities.item() <= 1.0


def test_the_prior_shift_moves_every_logit_it_predicts_by_itself_and_not_the_loss(smoke_parts):
    config, datamodule, module = smoke_parts
    (shift,) = module.hparams.prior_shift  # the smoke preset trains on a balanced sample
    assert shift == pytest.approx(datamodule.prior_shift()[0]) and shift < -1.5
    settings = {name: getattr(config, name) for name in MODEL_FIELDS}
    unshifted = TransformerModule(**settings)
    unshifted.load_state_dict(module.state_dict())
    module.eval(), unshifted.eval()
    batch = next(iter(datamodule.val_dataloader()))
    with torch.no_grad():
        shifted_p, plain_p = (m.predict_step(batch, 0) for m in (module, unshifted))
    moved = torch.special.logit(shifted_p.double()) - torch.special.logit(plain_p.double())
    assert moved.numpy() == pytest.approx(shift, abs=1e-3)
    loader = datamodule.val_dataloader()
    losses = [quiet_trainer().validate(m, loader, verbose=False)[0] for m in (module, unshifted)]
    assert losses[0]["Val_Loss"] == losses[1]["Val_Loss"]
    assert losses[0]["Val_F1_Score"] != losses[1]["Val_F1_Score"]


def trained_checkpoint(smoke_parts, path: Path) -> TransformerModule:
    """A fresh module trained for two batches, its Lightning checkpoint saved at `path`."""
    config, datamodule, _ = smoke_parts
    module = TransformerModule.from_config(config, datamodule)
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1)
    trainer.fit(module, datamodule=datamodule)
    trainer.save_checkpoint(path)
    return module


def test_checkpoint_keeps_only_trainable_weights_and_round_trips(smoke_parts, tmp_path):
    path = tmp_path / "adapter.ckpt"
    module = trained_checkpoint(smoke_parts, path)
    saved = torch.load(path, weights_only=False)["state_dict"]
    assert set(saved) == module.checkpoint_state_keys()
    assert module.trainable_state_keys() <= set(saved)
    restored = TransformerModule.load_from_checkpoint(path)
    restored_state = restored.state_dict()
    for key, tensor in module.state_dict().items():
        assert torch.equal(tensor, restored_state[key]), key


def test_checkpoint_from_other_lora_settings_fails_loudly(smoke_parts, tmp_path):
    path = tmp_path / "adapter.ckpt"
    trained_checkpoint(smoke_parts, path)
    checkpoint = torch.load(path, weights_only=False)
    checkpoint["state_dict"] = {
        k: v for k, v in checkpoint["state_dict"].items() if "lora_A" not in k
    }
    torch.save(checkpoint, path)
    with pytest.raises(KeyError, match="trainable weight"):
        TransformerModule.load_from_checkpoint(path)


def test_lora_layers_lists_every_adapted_layer_and_what_it_adds(smoke_parts):
    module = smoke_parts[2]
    layers = module.lora_layers()
    assert len(layers) == 6 * 6  # query, key, value, output and the feed-forward pair, 6 blocks
    head = 384 + 1  # the new classifier: one logit from MiniLM's 384 dimensions
    trainable, _ = module.trainable_parameter_count()
    assert sum(layer["lora_params"] for layer in layers) + head == trainable


def test_module_settings_are_train_config_fields_with_its_defaults():
    module = TransformerModule()
    config = TrainConfig()
    assert set(MODEL_FIELDS) <= {f.name for f in dataclasses.fields(TrainConfig)}
    for name in MODEL_FIELDS:
        assert module.hparams[name] == getattr(config, name), name
    with pytest.raises(ValueError, match="batch_size"):
        TransformerModule(batch_size=8)  # a data setting, not the module's


def test_the_module_rebuilt_from_a_config_has_that_configs_settings():
    config = TrainConfig(r=4, lora_alpha=8, lr=5e-4)

    class OneLabel:
        num_labels = 1

        def prior_shift(self) -> list[float]:
            return [0.0]

    module = TransformerModule.from_config(config, OneLabel())
    assert (module.hparams.r, module.hparams.lr) == (4, 5e-4)


def test_head_only_trains_the_head_and_full_fine_tuning_every_weight():
    head = TransformerModule(method="head")
    assert head.trainable_state_keys() == {"head.weight", "head.bias"}
    full = TransformerModule(method="full")
    trainable, total = full.trainable_parameter_count()
    assert trainable == total == 22_565_761  # MiniLM's weights (no pooler) and the head's 385
    blog_head = TransformerModule(method="head", pooling="cls")
    assert blog_head.trainable_state_keys() == {"model.classifier.weight", "model.classifier.bias"}


def test_an_unknown_method_is_refused():
    with pytest.raises(ValueError, match="Unknown method 'adapters'"):
        TransformerModule(method="adapters")


def test_a_head_only_checkpoint_keeps_the_head_alone(smoke_parts):
    config, datamodule, _ = smoke_parts
    module = TransformerModule.from_config(config.replace(method="head"), datamodule)
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    assert set(checkpoint["state_dict"]) == {"head.weight", "head.bias"}
    module.on_load_checkpoint(checkpoint)
    assert set(checkpoint["state_dict"]) == set(module.state_dict())
