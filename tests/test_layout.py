"""The package's shape: a pipeline without import circles, and only the package in it. The
package is `custom_module/` and, at the root as in the blog, `data.py`.

Every import between the project's modules is read from the source (those inside functions
too), so a lazy import cannot hide a circle.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = REPO_ROOT / "custom_module"
DATA = REPO_ROOT / "data.py"  # `from data import LexGlueDataModule`, as the blog writes it
# The design card's budget for the package the notebooks import.
MAX_PACKAGE_LINES = 2600


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, by its dotted name."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def package_imports() -> dict[str, set[str]]:
    """Module name -> the package modules it imports."""
    modules = {f"custom_module.{path.stem}": path for path in PACKAGE.glob("*.py")}
    modules.pop("custom_module.__init__")
    modules["data"] = DATA
    return {name: imported_modules(path) & set(modules) for name, path in modules.items()}


# The pipeline, top to bottom, then the support jobs: each file may import only those above it,
# so there is no import circle either.
LAYERS = (
    "config",
    "notebook_helpers",
    "processes",
    "data",
    "module",
    "callbacks",
    "distributed",
    "tracking",
    "checkpoints",
    "evaluation",
    "baseline",
    "onnx_export",
    "pyfunc_model",
    "serving",
    "runs",
    "run_notebooks",
    "train",
)


def test_every_import_points_up_the_pipeline():
    imports = package_imports()
    dotted = [name if name == "data" else f"custom_module.{name}" for name in LAYERS]
    assert sorted(imports) == sorted(dotted)
    for index, name in enumerate(dotted):
        assert imports[name] <= set(dotted[:index]), f"{name} imports from below it"


def test_config_imports_nothing_of_the_project_and_data_only_config():
    imports = package_imports()
    assert imports["custom_module.config"] == set()
    assert imports["data"] == {"custom_module.config"}
    # The store and the names in it come before every stage that reads runs.
    assert imports["custom_module.tracking"] == {"custom_module.config"}


def test_the_models_from_code_pyfunc_imports_nothing_of_the_package():
    assert not {n for n in imported_modules(PACKAGE / "pyfunc_model.py") if "custom_module" in n}


def test_the_package_never_imports_scripts_or_benchmarks():
    tools = {
        p.stem for folder in ("scripts", "benchmarks") for p in (REPO_ROOT / folder).glob("*.py")
    }
    for path in [*PACKAGE.glob("*.py"), DATA]:
        assert not imported_modules(path) & tools, path.name
        assert not {
            n for n in imported_modules(path) if n.split(".")[0] in {"scripts", "benchmarks"}
        }


def test_maintainer_tools_live_outside_the_package():
    names = {path.stem for path in PACKAGE.glob("*.py")}
    assert not names & {"search", "tutorial", "refresh_notebooks", "preset_search"}
    source = "\n".join(path.read_text() for path in PACKAGE.glob("*.py"))
    assert "nbclient" not in source  # one notebook executor: papermill, in run_notebooks.py


def test_the_package_stays_thin():
    paths = [*PACKAGE.glob("*.py"), DATA]
    lines = sum(len(path.read_text().splitlines()) for path in paths)
    assert lines <= MAX_PACKAGE_LINES, f"custom_module/ and data.py have {lines} lines"
    assert not (PACKAGE / "data.py").exists()  # one data module, where the blog has it


def string_constants(source: str) -> set[str]:
    """The string literals of Python source; IPython's `%` and `!` lines read as `pass`."""
    lines = source.splitlines()
    magics = {i for i, line in enumerate(lines) if line.lstrip()[:1] in {"%", "!"}}
    for i in magics:
        lines[i] = lines[i][: len(lines[i]) - len(lines[i].lstrip())] + "pass"
    tree = ast.parse("\n".join(lines))
    return {
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    }


@pytest.mark.parametrize(
    ("fact", "home"),
    [
        ("Val_F1_Score", "config.py"),
        ("mlflow.parentRunId", "tracking.py"),
        ("sqlite:///", "tracking.py"),
    ],
    ids=["MONITOR", "PARENT_TAG", "SQLITE_PREFIX"],
)
def test_a_name_is_spelled_in_its_home_and_imported_everywhere_else(fact, home):
    modules = [*PACKAGE.glob("*.py"), DATA]
    spelled = [p.name for p in modules if any(fact in s for s in string_constants(p.read_text()))]
    assert spelled == [home]
    for notebook in sorted((REPO_ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        assert not any(fact in s for cell in code for s in string_constants(cell)), notebook.name
