"""Run the tutorial notebooks in order with papermill: `python -m custom_module.tutorial`.

Each notebook is executed from `notebooks/` into the output folder, with the parameters below
injected into its `parameters` cell. Later notebooks find the run that earlier ones logged.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import nbformat
import papermill
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = (
    "01_data_exploration.ipynb",
    "02_peft_training.ipynb",
    "03_checkpoint_evaluation.ipynb",
    "04_pyfunc_serving.ipynb",
)


def notebook_parameters(preset_name: str, data_path: str | None) -> dict[str, dict]:
    """The papermill parameters of each notebook (each must exist in its `parameters` cell)."""
    data = {"data_path": data_path}
    return {
        "01_data_exploration.ipynb": data,
        "02_peft_training.ipynb": {**data, "preset_name": preset_name},
        "03_checkpoint_evaluation.ipynb": {},
        "04_pyfunc_serving.ipynb": {},
    }


def run_tutorial(output_dir: Path, preset_name: str = "auto", data_path: str | None = None) -> None:
    """Execute every notebook in order; stops at the first failing cell (papermill raises)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    parameters = notebook_parameters(preset_name, data_path)
    for name in NOTEBOOKS:
        print(f"running {name} ...", flush=True)
        papermill.execute_notebook(
            NOTEBOOK_DIR / name,
            output_dir / name,
            parameters=parameters[name],
            cwd=NOTEBOOK_DIR,
            progress_bar=False,
        )
    print(f"executed notebooks are in {output_dir}")


def refresh_committed_notebooks() -> None:
    """Re-execute the notebooks in `notebooks/` in place, with their default parameters.

    For maintainers: this is how the committed outputs are made (a real default-preset run),
    without papermill's metadata and injected cells, so nbval can check them in CI.
    """
    for name in NOTEBOOKS:
        print(f"refreshing {name} ...", flush=True)
        path = NOTEBOOK_DIR / name
        notebook = nbformat.read(path, as_version=4)
        resources = {"metadata": {"path": str(NOTEBOOK_DIR)}}
        start = time.perf_counter()
        NotebookClient(notebook, timeout=None, record_timing=False, resources=resources).execute()
        nbformat.write(notebook, path)
        print(f"refreshed {name} in {time.perf_counter() - start:.0f} s", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("output"), help="executed notebooks")
    parser.add_argument("--preset", default="auto", help="smoke, cpu, gpu or auto")
    parser.add_argument("--data-path", help="local copy of coastalcph/lex_glue (or LEXGLUE_PATH)")
    parser.add_argument(
        "--in-place", action="store_true", help="refresh the committed notebooks' outputs instead"
    )
    args = parser.parse_args(argv)
    if args.in_place:
        refresh_committed_notebooks()
    else:
        run_tutorial(args.output, args.preset, args.data_path)


if __name__ == "__main__":
    main()
