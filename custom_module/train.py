"""Train from the command line or from Python by executing notebook 02: one code path.

    python -m custom_module.train --preset cpu --max-epochs 3    # or --resume RUN_ID

Each option is a parameter of the notebook's `parameters` cell: `--debug-mode-sample 256`."""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow

from custom_module import run_notebooks
from custom_module.checkpoints import logged_epochs
from custom_module.notebook_helpers import read_results
from custom_module.processes import kill_tree

TRAINING_NOTEBOOK = "02_peft_training.ipynb"
DEFAULT_OUTPUT = Path("output") / "train" / TRAINING_NOTEBOOK
ALIASES = {"preset_name": "--preset", "resume_run_id": "--resume"}


def train(output: Path | None = None, log_output: bool = False, **parameters) -> str:
    """Execute notebook 02 with `parameters` (kept at `output` if given); return the run id."""
    with tempfile.TemporaryDirectory() as scratch:
        output = output or Path(scratch) / TRAINING_NOTEBOOK
        path = run_notebooks.run_notebook(TRAINING_NOTEBOOK, output, parameters, log_output)
        return read_results(path)["run_id"]


def resume(run_id: str, output: Path | None = None, log_output: bool = False) -> str:
    """Continue a run that died, from its latest checkpoint, in the same MLflow run; all training
    state comes back, so the remaining epochs match an uninterrupted run and keep their numbers."""
    return train(output, log_output, resume_run_id=run_id)


def first_checkpointed_run(experiment_name: str, started_after_ms: int) -> str | None:
    """A run started after `started_after_ms`, still running and with a checkpoint; else None."""
    experiment = mlflow.get_experiment_by_name(experiment_name)
    if experiment is None:
        return None
    query = f"attributes.status = 'RUNNING' and attributes.start_time > {started_after_ms}"
    runs = mlflow.search_runs([experiment.experiment_id], filter_string=query, output_format="list")
    return next((r.info.run_id for r in runs if logged_epochs(r.info.run_id)), None)


def train_then_kill(
    experiment_name: str, output: Path, timeout_seconds: float = 600, **parameters
) -> str:
    """Train with notebook 02's `parameters` in another process and SIGKILL it once epoch 0 is
    checkpointed, like a machine that loses power, to show resuming; the run id, still `RUNNING`."""
    command = [sys.executable, "-m", "custom_module.train", "--output", str(output)]
    for name, value in {"experiment_name": experiment_name, **parameters}.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    started = int(time.time() * 1000)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout_seconds
    try:
        while time.monotonic() < deadline:
            run_id = first_checkpointed_run(experiment_name, started)
            if run_id is not None:
                kill_tree(process)
                return run_id
            if process.poll() is not None:
                stderr = process.stderr.read().decode(errors="replace")[-3000:]
                raise RuntimeError(f"Training ended before its first checkpoint:\n{stderr}")
            time.sleep(0.1)
    finally:
        if process.poll() is None:
            kill_tree(process)
    raise TimeoutError(f"No checkpoint was logged within {timeout_seconds:.0f} s.")


def parse_args(argv: list[str] | None = None) -> tuple[Path, dict]:
    """(output path, notebook parameters) from the command line; one option per parameter."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="executed notebook")
    for name, declared in run_notebooks.declared_parameters(TRAINING_NOTEBOOK).items():
        option = f"--{name.replace('_', '-')}"
        flags = [ALIASES[name], option] if name in ALIASES else [option]
        described = f"{declared['help']} (default {declared['default']})"
        parser.add_argument(*flags, dest=name, type=run_notebooks.parse_value, help=described)
    args = vars(parser.parse_args(argv))
    output = args.pop("output")
    if int(os.environ.get("RANK", 0)):  # torchrun: every rank executes a copy of the notebook
        output = output.with_name(f"rank{os.environ['RANK']}_{output.name}")
    return output, {name: value for name, value in args.items() if value is not None}


def main(argv: list[str] | None = None) -> None:
    output, parameters = parse_args(argv)
    try:
        run_id = train(output, log_output=True, **parameters)
    except (run_notebooks.NotebookFailed, ValueError) as error:  # a failed cell, unknown preset
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    print(f"executed notebook: {output}")
    print(f"run_id: {run_id}")


if __name__ == "__main__":
    main()
