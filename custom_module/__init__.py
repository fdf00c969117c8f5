"""LoRA fine-tuning on LexGLUE UNFAIR-ToS, tracked by MLflow: a module per pipeline stage and per
support job, each importing only those above it in tests/test_layout.py's `LAYERS`."""
