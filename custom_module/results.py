"""A notebook's key results, recorded by its last cell and read back by tests and the CLI.

`record_results(...)` stores the values as JSON in the executed notebook's output (as the
recommenders notebooks do with scrapbook), shown to the reader as one line that names them;
`read_results(path)` finds them again. Nothing here
imports the training stack, so a notebook's last cell stays cheap.
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS_MARKER = "tutorial_results"


def record_results(**values) -> None:
    """Store `values` in the notebook's output, marked so that `read_results` can find them.

    The reader sees one line naming what was recorded, not a JSON dump: the numbers themselves
    are shown where the notebook teaches them.
    """
    from IPython.display import display

    json.dumps(values)  # fail here, in the notebook, on a value that JSON cannot hold
    text = f"recorded for the tests: {', '.join(values)}"
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
