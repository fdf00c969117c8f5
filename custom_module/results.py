"""A notebook's key results, recorded by its last cell and read back by tests and the CLI.

`record_results(...)` displays the values as JSON in the executed notebook (as the
recommenders notebooks do with scrapbook); `read_results(path)` finds them again. Nothing here
imports the training stack, so a notebook's last cell stays cheap.
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS_MARKER = "tutorial_results"


def record_results(**values) -> None:
    """Show `values` in the notebook, marked so that `read_results` can find them."""
    from IPython.display import display

    text = json.dumps(values, indent=1)
    bundle = {"application/json": values, "text/plain": text}
    display(bundle, raw=True, metadata={RESULTS_MARKER: True})


def read_results(notebook_path: str | Path) -> dict:
    """The values the executed notebook recorded; LookupError if it recorded none."""
    notebook = json.loads(Path(notebook_path).read_text())
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            if output.get("metadata", {}).get(RESULTS_MARKER):
                return output["data"]["application/json"]
    raise LookupError(f"{notebook_path} recorded no results: did it run to its last cell?")
