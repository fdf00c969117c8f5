"""ONNX copies of the served classifier, for the pyfunc's ONNX Runtime runtimes on CPUs.

`runtime="onnx"` is the merged model exported to ONNX, in float: PyTorch's answers, computed
faster by ONNX Runtime. `runtime="onnx-int8"` is that export quantized dynamically: the weights of
the encoder's linear layers stored as int8 (one scale per output channel), their inputs
quantized on the fly, so ONNX Runtime multiplies in int8. The feed-forward output projections
stay in float: their inputs, the GELU outputs, have the outlier values that int8 rounds worst
(on the reference run, in batches of 64 over the whole test split, quantizing them too cost
0.007 test F1; leaving them in float, 0.001).

"On the fly" means one scale per batch: a clause's probability moves a little with the clauses
it is batched with (up to 0.13 on the test split), which the float runtimes never do: with
batches of 4 to 64 clauses, test F1 came out 0.011 below to 0.001 above the float model's. The
pyfunc batches the same way for every request of the same clauses, so answers repeat.
`benchmarks/serving.py` measures the runtimes side by side.
"""

from __future__ import annotations

import copy
import tempfile
import warnings
from pathlib import Path

import onnx
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from transformers import AutoTokenizer

from custom_module.model_source import resolve_model_path
from custom_module.module import TransformerModule

# Where pyfunc_model.py (which cannot import this module) looks for each runtime's model.
ONNX_FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}
INPUT_NAMES = ("input_ids", "attention_mask")
EXAMPLE_CLAUSES = ("we may change these terms at any time without notice .", "you agree .")


def merged_copy(module: TransformerModule) -> TransformerModule:
    """A copy of `module` in eval mode with its LoRA matrices merged into the encoder: the same
    logits without the adapter indirection, and no `peft` needed to run it."""
    merged = copy.deepcopy(module).eval()
    merged.model = merged.model.merge_and_unload()
    return merged


def export_onnx(merged: TransformerModule, path: Path) -> None:
    """The forward pass of `merged` (a `merged_copy`; token ids and mask in, logits out) as an
    ONNX graph, with the batch size and the clause length left free.

    The example batch must hold padding: traced on a mask of ones only, the encoder's attention
    skips the mask altogether, and every padded batch then scores wrong.
    """
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(merged.hparams.model_name))
    example = tokenizer(list(EXAMPLE_CLAUSES), padding=True, return_tensors="pt")
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
    program.save(str(path))


def feed_forward_outputs(path: Path) -> list[str]:
    """Names of the matrix products that read a GELU output: each block's feed-forward output
    projection (the exporter names nodes by number, so they are found by what feeds them)."""
    graph = onnx.load(str(path)).graph
    producer = {output: node.op_type for node in graph.node for output in node.output}
    return [
        node.name
        for node in graph.node
        if node.op_type == "MatMul" and producer.get(node.input[0]) == "Gelu"
    ]


def export_int8(merged: TransformerModule, path: Path) -> None:
    """Export `merged` (a `merged_copy`) to ONNX and quantize it dynamically to int8 at `path`
    (34 MB for MiniLM, its feed-forward outputs kept in float, against 91 MB in float)."""
    with tempfile.TemporaryDirectory() as scratch:
        float_model = Path(scratch) / "model.onnx"
        export_onnx(merged, float_model)
        quantize_dynamic(
            float_model,
            path,
            weight_type=QuantType.QInt8,
            per_channel=True,
            nodes_to_exclude=feed_forward_outputs(float_model),
        )
