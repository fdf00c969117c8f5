"""Train from the command line or from Python by executing notebook 02: one code path.

    python -m custom_module.train --preset cpu --max-epochs 3
    python -m custom_module.train --resume RUN_ID

Every option is a parameter of the notebook's `parameters` cell (`--sample-size 256` sets
`sample_size = 256`); the notebook's cells build the data module and the LoRA module, switch on
MLflow autologging and train, exactly as a reader runs them. The executed notebook is kept
(`--output`), and the run id it recorded is printed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from custom_module.notebooks import (
    NotebookFailed,
    declared_parameters,
    parse_value,
    run_notebook,
)
from custom_module.results import read_results

TRAINING_NOTEBOOK = "02_peft_training.ipynb"
DEFAULT_OUTPUT = Path("output") / "train" / TRAINING_NOTEBOOK
# Short spellings of the notebook's parameter names on the command line.
ALIASES = {"preset_name": "--preset", "resume_run_id": "--resume"}


def train(output: Path | None = None, log_output: bool = False, **parameters) -> str:
    """Execute notebook 02 with `parameters` (its `parameters` cell's names); return the run id.

    `output` keeps the executed notebook; by default it is discarded.
    """
    with tempfile.TemporaryDirectory() as scratch:
        path = run_notebook(
            TRAINING_NOTEBOOK, output or Path(scratch) / TRAINING_NOTEBOOK, parameters, log_output
        )
        return read_results(path)["run_id"]


def resume(run_id: str, output: Path | None = None, log_output: bool = False) -> str:
    """Continue a run that died, from its latest checkpoint, in the same MLflow run.

    The optimizer, scheduler, epoch counter, EarlyStopping and random states come back from the
    checkpoint, so the remaining epochs match an uninterrupted run, and metrics keep their
    epoch numbering.
    """
    return train(output, log_output, resume_run_id=run_id)


def parse_args(argv: list[str] | None = None) -> tuple[Path, dict]:
    """(output path, notebook parameters) from the command line; one option per parameter."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="executed notebook")
    for name, declared in declared_parameters(TRAINING_NOTEBOOK).items():
        flags = [f"--{name.replace('_', '-')}"]
        if name in ALIASES:
            flags.insert(0, ALIASES[name])
        parser.add_argument(
            *flags,
            dest=name,
            type=parse_value,
            help=f"{declared['help']} (default {declared['default']})",
        )
    args = vars(parser.parse_args(argv))
    output = args.pop("output")
    return output, {name: value for name, value in args.items() if value is not None}


def main(argv: list[str] | None = None) -> None:
    output, parameters = parse_args(argv)
    try:
        run_id = train(output, log_output=True, **parameters)
    except (NotebookFailed, ValueError) as error:  # an unknown preset, a field set twice, ...
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    print(f"executed notebook: {output}")
    print(f"run_id: {run_id}")


if __name__ == "__main__":
    main()
