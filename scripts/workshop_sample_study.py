"""How the `workshop` preset's training sample was chosen: one candidate, scored at the real odds.

    python scripts/workshop_sample_study.py '{"debug_mode_sample": 2000, "max_epochs": 2}'

trains the `workshop` preset with these `TrainConfig` fields changed (a plain Lightning `Trainer`
with notebook 02's early stopping, no MLflow), keeps the best epoch by validation F1, and scores
it on every validation and test clause (their real ~1:9 share of unfair clauses): test PR-AUC,
test F1 at 0.5 with and without the prior-shift correction, at the threshold tuned on the
validation sample, and the expected calibration error before and after the correction. It prints
one JSON line: the rows of docs/presets.md's table ("The workshop preset on real text").
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import pytorch_lightning as pl
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from scipy.special import expit, logit
from sklearn.metrics import average_precision_score, f1_score, precision_recall_curve

from custom_module.config import MONITOR, preset
from custom_module.evaluation import predict
from custom_module.module import TransformerModule
from custom_module.notebook_helpers import quiet_library_output
from data import LexGlueDataModule


def expected_calibration_error(truth: np.ndarray, prob: np.ndarray, bins: int = 10) -> float:
    which = np.minimum((prob * bins).astype(int), bins - 1)
    gaps = [abs(prob[which == b].mean() - truth[which == b].mean()) for b in np.unique(which)]
    return float(np.dot(gaps, np.bincount(which)[np.unique(which)]) / len(prob))


def best_f1_threshold(truth: np.ndarray, prob: np.ndarray) -> float:
    precision, recall, thresholds = precision_recall_curve(truth, prob)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))])


def study(overrides: dict) -> dict:
    config = preset("workshop", **overrides)
    datamodule = LexGlueDataModule(config)
    datamodule.setup()
    pl.seed_everything(config.seed, workers=True)
    module = TransformerModule.from_config(config, datamodule)
    folder = tempfile.mkdtemp()
    keep_best = ModelCheckpoint(folder, monitor=MONITOR, mode="max")
    stopping = EarlyStopping(MONITOR, mode="max", patience=config.patience)
    trainer = pl.Trainer(
        max_epochs=config.max_epochs,
        callbacks=[stopping, keep_best],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    fit_seconds = time.perf_counter() - started
    best = TransformerModule.load_from_checkpoint(keep_best.best_model_path)
    sample_truth = datamodule.split("validation").targets[:, 0]
    sample_prob = predict(best, datamodule.eval_dataloader("validation"))[:, 0]
    every = LexGlueDataModule(config.replace(val_sample_size=None, test_sample_size=None))
    prob = {
        split: predict(best, every.eval_dataloader(split))[:, 0] for split in ("validation", "test")
    }
    truth = {split: every.split(split).targets[:, 0] for split in prob}
    shift = float(best.prior_shift[0])
    as_trained = expit(logit(prob["test"].astype(np.float64)) - shift)
    tuned = best_f1_threshold(sample_truth, sample_prob)
    test_truth, test_prob = truth["test"], prob["test"]
    return {
        "overrides": overrides,
        "prior_shift": round(shift, 3),
        "epochs": trainer.current_epoch,
        "best_epoch": int(keep_best.best_model_path.split("epoch=")[1].split("-")[0]),
        "fit_seconds": round(fit_seconds),
        "test_pr_auc": round(average_precision_score(test_truth, test_prob), 4),
        "test_f1_at_0.5_as_trained": round(f1_score(test_truth, as_trained > 0.5), 4),
        "test_f1_at_0.5_corrected": round(f1_score(test_truth, test_prob > 0.5), 4),
        "threshold_tuned_on_validation_sample": round(tuned, 3),
        "test_f1_at_tuned": round(f1_score(test_truth, test_prob > tuned), 4),
        "test_ece_as_trained": round(expected_calibration_error(test_truth, as_trained), 4),
        "test_ece_corrected": round(expected_calibration_error(test_truth, test_prob), 4),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="?", default="{}", help="TrainConfig fields, JSON")
    quiet_library_output()
    print(json.dumps(study(json.loads(parser.parse_args().overrides))))
