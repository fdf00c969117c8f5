"""LoRA fine-tuning of a transformer on LexGLUE UNFAIR-ToS, tracked end to end by MLflow: what the
notebooks share and what must be importable, a module per pipeline stage (`config` → `data` →
`module` → ... → `serving`) and per support job (`tracking`, `runs`, `notebooks`, `train`); each
module imports only those above it in tests/test_layout.py's `LAYERS`."""
