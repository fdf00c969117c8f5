"""Execute the tutorial notebooks with papermill: one code path for notebooks and command lines.

The command lines (`python -m custom_module.train`, `python -m custom_module.tutorial`) run the
same notebooks a reader runs, with parameters injected into each notebook's `parameters` cell.
Parameters are checked against that cell before anything runs, and a failure names the notebook
and the cell that failed.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import papermill
from papermill.exceptions import PapermillExecutionError

RUN_ID = re.compile(r"[0-9a-f]{32}")
NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = (
    "01_data_exploration.ipynb",
    "02_peft_training.ipynb",
    "03_checkpoint_evaluation.ipynb",
    "04_pyfunc_serving.ipynb",
    "05_workshop_sweep_and_resume.ipynb",
)


class NotebookFailed(RuntimeError):
    """A notebook stopped at an error; the message names the notebook and the cell."""


def declared_parameters(name: str) -> dict[str, dict]:
    """The notebook's `parameters` cell: name -> papermill's description (default, help)."""
    return papermill.inspect_notebook(str(NOTEBOOK_DIR / name))


def check_parameters(name: str, parameters: dict) -> None:
    """ValueError naming what the notebook's `parameters` cell does not declare."""
    declared = declared_parameters(name)
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise ValueError(f"{name} has no parameter(s) {unknown}; it takes {sorted(declared)}.")


def parse_value(text: str) -> str | int | float | bool | list | dict | None:
    """A command-line value as the Python value it spells (`3`, `0.5`, `None`, `True`, a list
    of those such as `[2, 8]`, a dict of them by name such as `{'learning_rate': 0.002}`), else
    the text itself. An MLflow run id (32 hex digits) stays text, even all digits."""
    if RUN_ID.fullmatch(text):
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    scalars = (int, float, bool, str)
    if isinstance(value, list) and all(isinstance(item, scalars) for item in value):
        return value
    if isinstance(value, dict) and all(
        isinstance(key, str) and (item is None or isinstance(item, scalars))
        for key, item in value.items()
    ):
        return value
    return value if value is None or isinstance(value, scalars) else text


def run_notebook(
    name: str, output: Path, parameters: dict | None = None, log_output: bool = False
) -> Path:
    """Execute notebook `name` into `output` with `parameters`; return the output path.

    `log_output` streams the cells' output to the terminal while it runs (the command lines do).
    """
    parameters = parameters or {}
    check_parameters(name, parameters)
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(
            NOTEBOOK_DIR / name,
            output,
            parameters=parameters,
            cwd=NOTEBOOK_DIR,
            progress_bar=False,
            log_output=log_output,
            # ipykernel 7 warns on every start that its local TCP ports are unencrypted; that
            # line would land in the output of any notebook that runs another (notebook 05).
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
        )
    except PapermillExecutionError as error:
        raise NotebookFailed(
            f"{name} failed in cell {error.exec_count} with {error.ename}: {error.evalue}\n"
            f"The executed notebook, up to the error, is {output}."
        ) from error
    return output
