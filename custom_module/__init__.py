"""LoRA fine-tuning of a transformer on LexGLUE UNFAIR-ToS, tracked end to end by MLflow.

The notebooks in `notebooks/` tell the story; this package holds what they share and what must be
importable. Its modules follow the pipeline: `config` (TrainConfig, presets) → `data` (the
LexGlueDataModule) → `module` (TransformerModule) → `callbacks` → `checkpoints` → `evaluation` →
`serving` (with `pyfunc_model` and `onnx_export`), beside `baseline`; with the support jobs
`tracking` (the store, run lookup, names), `runs` (reading runs back), `notebook_helpers` and
`notebooks` (the one notebook runner), and `train` (the command line, which runs notebook 02).
"""
