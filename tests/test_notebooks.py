"""The notebooks are clean, parameterised, and take every parameter the runner passes."""

from __future__ import annotations

import json

import papermill
import pytest

from custom_module.tutorial import NOTEBOOK_DIR, NOTEBOOKS, notebook_parameters


def test_every_notebook_in_the_folder_is_run_by_the_tutorial():
    assert sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb")) == sorted(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_papermill_parameter_exists_in_the_parameters_cell(name):
    declared = papermill.inspect_notebook(str(NOTEBOOK_DIR / name))
    passed = notebook_parameters("cpu", "/data")[name]
    assert set(passed) <= set(declared), set(passed) - set(declared)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_parameters_cell_holds_commented_plain_scalars(name):
    for parameter in papermill.inspect_notebook(str(NOTEBOOK_DIR / name)).values():
        assert parameter["help"], f"{parameter['name']} needs a one-line comment"
        assert parameter["inferred_type_name"] in {"str", "int", "float", "bool", "None"}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_is_clean_and_ran_top_to_bottom(name):
    notebook = json.loads((NOTEBOOK_DIR / name).read_text())
    code_cells = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    tags = [tag for cell in notebook["cells"] for tag in cell["metadata"].get("tags", [])]
    assert tags.count("parameters") == 1 and "injected-parameters" not in tags
    counts = [cell["execution_count"] for cell in code_cells]
    assert counts == list(range(1, len(code_cells) + 1)), "re-run the notebook top to bottom"
    errors = [o for cell in code_cells for o in cell["outputs"] if o["output_type"] == "error"]
    assert not errors
    assert "papermill" not in notebook["metadata"], "commit the clean notebook, not papermill's"
