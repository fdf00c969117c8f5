"""Execute the tutorial notebooks with papermill: one code path for notebooks and command lines.

    python -m custom_module.run_notebooks --preset smoke              # all of them, into output/
    python -m custom_module.run_notebooks --notebook 02 -p max_epochs 2 -p seed 7

Each parameter goes to every notebook that declares it; one that none declares is refused."""

import argparse
import ast
import re
import sys
from pathlib import Path

import papermill
from papermill.exceptions import PapermillExecutionError

RUN_ID = re.compile(r"[0-9a-f]{32}")
NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = tuple(sorted(path.name for path in NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb")))


class NotebookFailed(RuntimeError):
    """A notebook stopped at an error; the message names the notebook and the cell."""


def declared_parameters(name: str) -> dict[str, dict]:
    """The notebook's `parameters` cell: name -> papermill's description (default, help)."""
    return papermill.inspect_notebook(str(NOTEBOOK_DIR / name))


def parameters_per_notebook(notebooks: list[str], parameters: dict) -> dict[str, dict]:
    """Each notebook's share of `parameters`; ValueError for one that none of them declares."""
    declared = {name: declared_parameters(name) for name in notebooks}
    known = sorted({p for names in declared.values() for p in names})
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise ValueError(
            f"{', '.join(notebooks)}: no parameter(s) {unknown}; the parameters are {known}."
        )
    return {n: {k: v for k, v in parameters.items() if k in declared[n]} for n in notebooks}


def select_notebooks(prefixes: list[str] | None) -> list[str]:
    """The notebooks, in order, whose names start with one of `prefixes` (`02`); all for None."""
    if not prefixes:
        return list(NOTEBOOKS)
    unmatched = [p for p in prefixes if not any(name.startswith(p) for name in NOTEBOOKS)]
    if unmatched:
        raise ValueError(f"No notebook starts with {unmatched}; the notebooks are {NOTEBOOKS}.")
    return [name for name in NOTEBOOKS if any(name.startswith(p) for p in prefixes)]


def parse_value(text: str) -> str | int | float | bool | list | dict | None:
    """The scalar, list of scalars or dict of them by name (a value may be such a dict too:
    `max_time`) a command-line value spells, else the text; an MLflow run id (32 hex digits)
    stays text even when it is all digits."""
    if RUN_ID.fullmatch(text):
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    scalars = (int, float, bool, str)
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        plain = [v for v in value.values() if not isinstance(v, dict)] + [
            w for v in value.values() if isinstance(v, dict) for w in v.values()
        ]
        return value if all(v is None or isinstance(v, scalars) for v in plain) else text
    if isinstance(value, list) and all(isinstance(item, scalars) for item in value):
        return value
    return value if value is None or isinstance(value, scalars) else text


def run_notebook(
    name: str, output: Path, parameters: dict | None = None, log_output: bool = False
) -> Path:
    """Execute notebook `name` into `output`; `log_output` streams the cells' output as it runs."""
    parameters = parameters_per_notebook([name], parameters or {})[name]
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("output"), help="executed notebooks")
    parser.add_argument("--notebook", action="append", help="run only these (e.g. 02); repeatable")
    parser.add_argument("--preset", help="preset_name: smoke, workshop, cpu, gpu or auto")
    parser.add_argument("--data-path", help="the data_path parameter (or LEXGLUE_PATH)")
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="any notebook parameter, e.g. -p max_epochs 2",
    )
    args = parser.parse_args(argv)
    parameters = {name: parse_value(value) for name, value in args.parameter}
    named = {"preset_name": args.preset, "data_path": args.data_path}
    parameters |= {name: value for name, value in named.items() if value}
    try:
        notebooks = select_notebooks(args.notebook)
        shares = parameters_per_notebook(notebooks, parameters)
        for name in notebooks:
            print(f"running {name} {shares[name] or ''}", flush=True)
            print(f"  wrote {run_notebook(name, args.output / name, shares[name])}", flush=True)
    except (ValueError, NotebookFailed) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    print(f"executed notebooks are in {args.output}")


if __name__ == "__main__":
    main()
