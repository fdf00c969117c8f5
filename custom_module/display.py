"""Showing the package's code in a notebook, where the tutorial teaches it.

Some classes must live in the package (Lightning rebuilds `TransformerModule` from a checkpoint
by importing it; a models-from-code pyfunc is a file), but the reader should still read them
where they are taught, not in another window.
"""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path

from IPython.display import Code


def show_source(*objects) -> Code:
    """The source of functions, methods, classes or modules, syntax-highlighted."""
    parts = [textwrap.dedent(inspect.getsource(item)).rstrip() for item in objects]
    return Code("\n\n".join(parts), language="python")


def show_file(path: str | Path) -> Code:
    """A whole source file, syntax-highlighted (e.g. the models-from-code pyfunc)."""
    return Code(Path(path).read_text(), language="python")
