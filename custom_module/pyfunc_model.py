"""The MLflow pyfunc model: raw clause text in, `fair` / `unfair` and probabilities out.

Logged as "models from code": MLflow stores this file with the model and runs it on load, so
serving needs neither this repository (it imports nothing from `custom_module`) nor pickled
classes. Its artifacts: a Hugging Face folder (tokenizer, LoRA-merged encoder, with mean pooling
the head in `head.safetensors`) and `settings.json` (threshold, max_length, task, pooling,
category names, runtime, prior shift). With `runtime` "onnx" or "onnx-int8" ONNX Runtime computes
the logits on an ONNX copy (float, or int8) in numpy, never importing torch, so those runtimes'
environments leave torch out (`benchmarks/pyfunc_footprint.py` measures what that saves)."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from transformers import AutoTokenizer

TEXT_COLUMN = "text"
# Clauses per forward pass by runtime, after sorting a request by length. Small batches pad
# least: on the test split in requests of 256 on 2 cores, PyTorch ran 1.3x faster in batches of
# 16 than of 64, and ONNX Runtime 0-11% faster in batches of 8 than of 16 (five runs)
# (`benchmarks/serving.py` measures each runtime side by side with its runner-up size).
BATCH_SIZES = {"torch": 16, "onnx": 8, "onnx-int8": 8}
HEAD_FILE = "head.safetensors"  # the mean-pooling head: `weight` (labels x hidden), `bias`
# The ONNX runtimes' models (token ids and mask in, logits out), by runtime. Defined here, the one
# file served without the package, for `serving` to write them where this reads them.
ONNX_FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}


def clauses_from(model_input) -> list[str]:
    """The clauses of a request: a DataFrame's `text` column, or a list of strings.

    Bad input is a client error (HTTP 400 when served) that names the offending row.
    """
    if isinstance(model_input, pd.DataFrame):
        # MLflow hands a plain list of strings over as a DataFrame with the single column 0.
        column = TEXT_COLUMN if TEXT_COLUMN in model_input.columns else None
        if list(model_input.columns) == [0]:
            column = 0
        if column is None:
            raise MlflowException.invalid_parameter_value(
                f"Expected a column {TEXT_COLUMN!r}; got columns {list(model_input.columns)}."
            )
        clauses = model_input[column].tolist()
    elif isinstance(model_input, (list, tuple, np.ndarray, pd.Series)):
        clauses = list(model_input)
    else:
        raise MlflowException.invalid_parameter_value(
            f"Expected a DataFrame with a {TEXT_COLUMN!r} column or a list of strings; "
            f"got {type(model_input).__name__}."
        )
    for row, clause in enumerate(clauses):
        if not isinstance(clause, str) and pd.isna(clause):
            raise MlflowException.invalid_parameter_value(
                f"Clause {row} is missing (None or NaN). Send non-empty text."
            )
        if not isinstance(clause, str) or not clause.strip():
            raise MlflowException.invalid_parameter_value(
                f"Clause {row} is empty or not a string: {clause!r}. Send non-empty text."
            )
    return clauses


class UnfairClauseClassifier(mlflow.pyfunc.PythonModel):
    """Flags potentially unfair Terms-of-Service clauses (LexGLUE UNFAIR-ToS)."""

    def load_context(self, context) -> None:
        folder = context.artifacts["classifier"]
        self.settings = json.loads(Path(context.artifacts["settings"]).read_text())
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        runtime = self.settings.get("runtime", "torch")
        self.batch_size = BATCH_SIZES[runtime]
        self.session = None
        if runtime in ONNX_FILES:
            import onnxruntime  # only these runtimes need it (and list it in their requirements)

            self.session = onnxruntime.InferenceSession(
                str(Path(folder) / ONNX_FILES[runtime]), providers=["CPUExecutionProvider"]
            )
            return
        # The torch runtime only: the ONNX runtimes' environments have neither package.
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoModelForSequenceClassification

        if self.settings.get("pooling", "cls") == "cls":  # the blog's head, inside the model
            self.model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
            self.head = None
        else:
            self.model = AutoModel.from_pretrained(folder, add_pooling_layer=False).eval()
            weights = load_file(Path(folder) / HEAD_FILE)
            self.head = torch.nn.Linear(*reversed(weights["weight"].shape))
            self.head.load_state_dict(weights)

    def logits(self, encoded: dict[str, np.ndarray]) -> np.ndarray:
        """(batch, num_labels): the blog's head, or the mean of the token vectors, then the head."""
        if self.session is not None:  # the whole forward pass, pooling and head included
            feeds = {name: encoded[name] for name in ("input_ids", "attention_mask")}
            return self.session.run(["logits"], feeds)[0]
        import torch  # loaded already by load_context; imported here, not at the top, see there

        with torch.inference_mode():
            encoded = {name: torch.from_numpy(ids) for name, ids in encoded.items()}
            output = self.model(**encoded)
            if self.head is None:
                return output.logits.float().numpy()
            mask = encoded["attention_mask"].unsqueeze(-1).to(output.last_hidden_state.dtype)
            pooled = (output.last_hidden_state * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
            return self.head(pooled).float().numpy()

    def probabilities(self, clauses: list[str]) -> np.ndarray:
        """Sigmoid outputs, (clauses, num_labels), in the order given.

        Clauses are batched by length (as in training) so each batch pads to little more than
        its own longest clause; any request size fits in memory.
        """
        by_length = np.argsort([len(clause) for clause in clauses], kind="stable")
        num_labels = (
            len(self.settings["category_names"]) if self.settings["task"] == "multilabel" else 1
        )
        probabilities = np.zeros((len(clauses), num_labels), dtype=np.float32)
        for start in range(0, len(clauses), self.batch_size):
            rows = by_length[start : start + self.batch_size]
            encoded = self.tokenizer(
                [clauses[row] for row in rows],
                truncation=True,
                max_length=self.settings["max_length"],
                padding=True,
                return_tensors="np",
            )
            # Training's balanced sample moved the log-odds by -shift: taken off (notebook 03).
            logits = self.logits(encoded) + np.asarray(self.settings.get("prior_shift") or 0.0)
            # The sigmoid, written with tanh so that no logit overflows `exp`.
            probabilities[rows] = 0.5 + 0.5 * np.tanh(0.5 * logits)
        return probabilities

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """One row per clause: `label`, `prob_unfair`; multilabel adds the categories found.

        MLflow enforces the signature first and hands every request over as a DataFrame, lists
        too; the hint says so, and tells MLflow not to infer a second schema from it.
        """
        clauses = clauses_from(model_input)
        probabilities = self.probabilities(clauses)
        prob_unfair = probabilities.max(axis=1)
        threshold = self.settings["threshold"]
        result = pd.DataFrame(
            {
                "label": np.where(prob_unfair > threshold, "unfair", "fair"),
                "prob_unfair": prob_unfair.astype(float),
            }
        )
        if self.settings["task"] == "multilabel":
            names = self.settings["category_names"]
            result["categories"] = [
                "; ".join(name for name, p in zip(names, row, strict=True) if p > threshold)
                for row in probabilities
            ]
            for index, name in enumerate(names):
                result[f"prob_{name}"] = probabilities[:, index].astype(float)
        return result


mlflow.models.set_model(UnfairClauseClassifier())
