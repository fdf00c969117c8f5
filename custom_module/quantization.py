"""ONNX copies of the served classifier, for the pyfunc's ONNX Runtime runtimes on CPUs.

`runtime="onnx"` is the merged model exported to ONNX and rewritten for ONNX Runtime's fused
transformer operators (onnxscript's `optimize_for_ort`): each block's attention becomes one
`Attention` node, which projects query, key and value in one matrix product and reads the padding
mask as a mask; each residual addition joins its layer norm (`SkipLayerNormalization`); GELU joins
its bias. PyTorch's answers, computed faster.

`runtime="onnx-int8"` is that graph quantized dynamically: the weights of every linear layer,
attention's included (`QAttention`), stored as int8 with one scale per output channel, their inputs
quantized on the fly, so ONNX Runtime multiplies in int8. "On the fly" means one scale per batch:
a clause's probability moves with the clauses it is batched with, which the float runtimes never
do. On the reference run's test split, in batches of 1 to 64 clauses: test F1 0.0035 below to
0.0047 above the float model's, 4 to 10 of 1,607 labels different, single probabilities off by up
to 0.26. (The earlier int8 graph, unfused, feed-forward outputs in float, scored 0.0024 to 0.0105
below with 3 to 6 labels different, and was 1.2x slower.) The pyfunc batches the same way for
every request of the same clauses, so answers repeat. `benchmarks/serving.py` measures the
runtimes side by side.
"""

from __future__ import annotations

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

from custom_module.model_source import resolve_model_path
from custom_module.module import TransformerModule

# Where pyfunc_model.py (which cannot import this module) looks for each runtime's model.
ONNX_FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}
INPUT_NAMES = ("input_ids", "attention_mask")
EXAMPLE_CLAUSES = ("we may change these terms at any time without notice .", "you agree .")
# `Attention`'s inputs by position (ONNX Runtime's com.microsoft operator).
WEIGHTS, MASK_INDEX, ATTENTION_BIAS = 1, 3, 5
# Largest float difference from PyTorch's logits the exported graph may show on the example.
EXPORT_TOLERANCE = 1e-4


def example_batch(merged: TransformerModule) -> dict[str, torch.Tensor]:
    """Two clauses of different lengths, so the batch holds padding: traced on a mask of ones
    only, the encoder's attention skips the mask altogether, and every padded batch scores wrong."""
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(merged.hparams.model_name))
    return dict(tokenizer(list(EXAMPLE_CLAUSES), padding=True, return_tensors="pt"))


def export_onnx(merged: TransformerModule, path: Path) -> None:
    """The forward pass of `merged` (its adapters merged; token ids and mask in, logits out) as an
    ONNX graph fused for ONNX Runtime, with the batch size and the clause length left free.

    Fails if the saved graph's logits on the example batch differ from PyTorch's.
    """
    example = example_batch(merged)
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
        expected = merged(*(example[name] for name in INPUT_NAMES)).numpy()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = session.run(["logits"], {name: example[name].numpy() for name in INPUT_NAMES})[0]
    if not np.allclose(logits, expected, atol=EXPORT_TOLERANCE):
        raise RuntimeError(
            f"The ONNX export of {merged.hparams.model_name} does not reproduce PyTorch's logits "
            f"(largest difference {np.abs(logits - expected).max():.2g}); use runtime='torch'."
        )


def fused_for_onnx_runtime(model: ir.Model) -> ir.Model:
    """`model` with ONNX Runtime's transformer fusions, each `Attention` made quantizable.

    The fusions pack each block's query, key and value weights into one matrix, but leave it as a
    concatenation computed at run time, and feed the padding mask as an additive attention bias;
    ONNX Runtime's quantizer only turns `Attention` into `QAttention` when the packed weights are
    stored and the mask comes as a mask index. `qkv_hidden_sizes` goes too: the three sizes are
    equal (the operator's default), and the quantizer skips any node that names them.
    """
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
    """Export `merged` (adapters merged) to ONNX and quantize it dynamically to int8 at `path`
    (23 MB for MiniLM, against 90 MB in float)."""
    with tempfile.TemporaryDirectory() as scratch:
        float_model = Path(scratch) / "model.onnx"
        export_onnx(merged, float_model)
        # The fused operators are ONNX Runtime's own, whose output types ONNX's shape inference
        # cannot tell: the quantizer is told they are float.
        quantize_dynamic(
            float_model,
            path,
            weight_type=QuantType.QInt8,
            per_channel=True,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
