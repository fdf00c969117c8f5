"""ONNX copies of the served classifier for CPUs: `onnx`, fused for ONNX Runtime, PyTorch's answers
faster; `onnx-int8`, quantized dynamically, so a probability moves slightly with the batch."""

import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime
import torch
from onnx_ir.passes.common import RemoveUnusedNodesPass
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxscript.optimizer import fold_constants
from onnxscript.rewriter.ort_fusions import optimize_for_ort
from transformers import AutoTokenizer

from custom_module.config import EXAMPLE_CLAUSES, resolve_model_path
from custom_module.module import TransformerModule

INPUT_NAMES = ("input_ids", "attention_mask")
WEIGHTS, MASK_INDEX, ATTENTION_BIAS = 1, 3, 5  # inputs of ONNX Runtime's `Attention`, by position
EXPORT_TOLERANCE = 1e-4  # the largest difference from PyTorch's logits allowed on the example


def export_onnx(merged: TransformerModule, path: Path) -> None:
    """The forward pass of `merged` (adapters merged) as an ONNX graph fused for ONNX Runtime,
    batch size and clause length free; fails if its logits differ from PyTorch's."""
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(merged.hparams.pretrained_model))
    example = dict(tokenizer(list(EXAMPLE_CLAUSES), padding=True, return_tensors="pt"))
    batch, tokens = torch.export.Dim("batch"), torch.export.Dim("tokens", max=512)
    with warnings.catch_warnings():
        # Both inputs share the two free axes, as intended; the exporter says so once per axis.
        warnings.filterwarnings("ignore", message="# The axis name")
        program = torch.onnx.export(
            merged,
            tuple(example[name] for name in INPUT_NAMES),
            input_names=list(INPUT_NAMES),
            output_names=["logits"],
            dynamic_shapes=({0: batch, 1: tokens}, {0: batch, 1: tokens}),
            dynamo=True,
            verbose=False,
        )
    ir.save(fused_for_onnx_runtime(program.model), str(path))
    with torch.inference_mode():
        expected = merged(*(example[name] for name in INPUT_NAMES)).logits.numpy()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = session.run(["logits"], {name: example[name].numpy() for name in INPUT_NAMES})[0]
    if not np.allclose(logits, expected, atol=EXPORT_TOLERANCE):
        raise RuntimeError(
            f"The ONNX export of {merged.hparams.pretrained_model} does not reproduce PyTorch's "
            f"logits (largest difference {np.abs(logits - expected).max():.2g}); use "
            "runtime='torch'."
        )


def fused_for_onnx_runtime(model: ir.Model) -> ir.Model:
    """`model` with ONNX Runtime's fusions, each `Attention` quantizable: packed QKV weights stored
    (not concatenated at run time), a mask index (not a bias), and no `qkv_hidden_sizes`."""
    model, _ = optimize_for_ort(model)
    graph = model.graph
    attentions = [node for node in graph if node.op_type == "Attention"]
    packing = {node.inputs[WEIGHTS].producer() for node in attentions}
    # Folded whatever their size (None: the folder's default rules for every other node).
    fold_constants(model, should_fold=lambda node: (node in packing) or None)
    attention_mask = next(value for value in graph.inputs if value.name == "attention_mask")
    cast = ir.node("Cast", [attention_mask], {"to": ir.DataType.INT32}, name="mask_index")
    graph.insert_before(graph.node(0), cast)
    for node in attentions:
        sizes = node.attributes.get("qkv_hidden_sizes")
        if sizes is not None and len(set(sizes.as_ints())) > 1:
            continue
        node.replace_input_with(MASK_INDEX, cast.outputs[0])
        node.resize_inputs(ATTENTION_BIAS)
        node.attributes.pop("qkv_hidden_sizes", None)
    RemoveUnusedNodesPass()(model)
    return model


def export_int8(merged: TransformerModule, path: Path) -> None:
    """`export_onnx`, then quantized dynamically to int8: 23 MB for MiniLM, against 90 in float."""
    with tempfile.TemporaryDirectory() as scratch:
        float_model = Path(scratch) / "model.onnx"
        export_onnx(merged, float_model)
        # The fused operators are ONNX Runtime's own, whose output types ONNX's shape inference
        # cannot tell: the quantizer is told they are float.
        options = {"DefaultTensorType": onnx.TensorProto.FLOAT}
        quantize_dynamic(
            float_model, path, weight_type=QuantType.QInt8, per_channel=True, extra_options=options
        )
