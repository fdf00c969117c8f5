"""The notebooks are clean and parameterised; the papermill runner passes parameters and fails
clearly; the package stays light and its layers apart."""

from __future__ import annotations

import json
import subprocess
import sys

import papermill
import pytest
import refresh_notebooks
from run_layout import command_line, failed_saying

from custom_module.run_notebooks import (
    NOTEBOOK_DIR,
    NOTEBOOKS,
    main,
    parameters_per_notebook,
    select_notebooks,
)


def test_every_notebook_in_the_folder_is_run_by_the_tutorial():
    assert sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb")) == sorted(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_parameters_cell_holds_commented_plain_values(name):
    for parameter in papermill.inspect_notebook(str(NOTEBOOK_DIR / name)).values():
        assert parameter["help"], f"{parameter['name']} needs a one-line comment"
        assert parameter["inferred_type_name"] in {"str", "int", "float", "bool", "None", "list"}


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


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_outputs_show_no_warning_and_no_machine_path(name):
    notebook = json.loads((NOTEBOOK_DIR / name).read_text())
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            text = json.dumps(output.get("text", "")) + json.dumps(output.get("data", {}))
            assert "Warning" not in text, cell["source"]
            assert "/work/" not in text and "site-packages" not in text, cell["source"]
            assert "/home/" not in text and "/tmp/" not in text, cell["source"]


def code_cells(name: str) -> list[dict]:
    notebook = json.loads((NOTEBOOK_DIR / name).read_text())
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def test_the_training_notebook_runs_the_blogs_lines_without_distributed_machinery():
    """DDP and torchrun live behind `DistributedTraining` (docs/distributed.md), not in 02."""
    cells = ["".join(cell["source"]) for cell in code_cells("02_peft_training.ipynb")]
    for word in ("rank", "torchrun", "WORLD_SIZE", "barrier", "fork", "nullcontext"):
        assert not [cell for cell in cells if word in cell], word
    (trainer,) = [cell for cell in cells if "pl.Trainer(" in cell]
    (run,) = [cell for cell in cells if "trainer.fit(" in cell]
    assert len(trainer.splitlines()) <= 25 and len(run.splitlines()) <= 15


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_no_cell_prints_more_than_40_lines_of_source(name):
    for cell in code_cells(name):
        if "show_source(" in "".join(cell["source"]):
            (shown,) = [o["data"]["text/plain"] for o in cell["outputs"] if "data" in o]
            assert len("".join(shown).splitlines()) <= 40, cell["source"]


def test_the_comparison_of_methods_plots_score_against_cost():
    outputs = [o for cell in code_cells("06_does_lora_pay.ipynb") for o in cell["outputs"]]
    assert any("image/png" in output.get("data", {}) for output in outputs)


def test_each_parameter_goes_to_the_notebooks_that_declare_it():
    shares = parameters_per_notebook(list(NOTEBOOKS), {"data_path": "/d", "preset_name": "cpu"})
    assert shares["01_data_exploration.ipynb"] == {"data_path": "/d"}
    assert shares["02_peft_training.ipynb"] == {"data_path": "/d", "preset_name": "cpu"}
    assert shares["03_checkpoint_evaluation.ipynb"] == {}


def test_a_misspelled_parameter_is_refused_before_anything_runs(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--output", str(tmp_path), "-p", "max_epoch", "2"])
    assert stopped.value.code == 1
    assert "max_epoch" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing was executed
    with pytest.raises(ValueError, match="preset_name"):
        parameters_per_notebook(["03_checkpoint_evaluation.ipynb"], {"preset_name": "cpu"})


def test_single_notebooks_are_chosen_by_prefix():
    assert select_notebooks(["02"]) == ["02_peft_training.ipynb"]
    assert select_notebooks(None) == list(NOTEBOOKS)
    with pytest.raises(ValueError, match="07"):
        select_notebooks(["07"])


@pytest.mark.notebook
def test_a_failing_notebook_is_named_with_its_cell_and_exits_1(tmp_path, tracking_store):
    arguments = ["--output", str(tmp_path), "--notebook", "03", "-p", "run_id", "0" * 32]
    result = command_line("custom_module.run_notebooks", *arguments)
    failed_saying(result, "03_checkpoint_evaluation.ipynb failed in cell", "LookupError: No run")


def imported_after(statement: str) -> set[str]:
    """The heavy libraries, and the training code, a fresh interpreter has imported after
    `statement`."""
    code = f"{statement}; import sys; print(sorted(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    modules = set(eval(result.stdout))  # noqa: S307 (our own printed list)
    return modules & {"torch", "transformers", "mlflow", "custom_module.train"}


def test_importing_the_package_imports_no_heavy_library():
    assert imported_after("import custom_module, custom_module.notebook_helpers") == set()


@pytest.mark.slow
def test_evaluation_and_serving_do_not_import_the_training_code():
    imported = imported_after("import custom_module.evaluation, custom_module.serving")
    assert "torch" in imported  # they do load the stack ...
    assert "custom_module.train" not in imported  # ... but not the training code


def test_the_refresh_trains_the_multilabel_run_only_when_the_store_has_none(monkeypatch):
    trained = []
    monkeypatch.setattr(refresh_notebooks, "train", lambda **parameters: trained.append(parameters))

    def no_run(experiment_name):
        raise LookupError(experiment_name)

    monkeypatch.setattr(refresh_notebooks, "latest_finished_run", no_run)
    refresh_notebooks.ensure_multilabel_run()
    # Filed where notebook 03 looks for it: its parameter's default.
    expected = {"experiment_name": "lexglue-unfair-tos-multilabel"}
    assert trained == [{**expected, **refresh_notebooks.MULTILABEL_TRAINING}]
    monkeypatch.setattr(refresh_notebooks, "latest_finished_run", lambda experiment_name: object())
    refresh_notebooks.ensure_multilabel_run()
    assert len(trained) == 1


def test_the_refresh_writes_notebooks_without_papermills_metadata(tmp_path):
    executed = tmp_path / "executed.ipynb"
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": 1,
                "id": "a",
                "metadata": {"papermill": {"duration": 1.0}, "execution": {}, "tags": ["x"]},
                "outputs": [],
                "source": "1",
            },
            {"cell_type": "markdown", "id": "b", "metadata": {"tags": []}, "source": "text"},
        ],
        "metadata": {"papermill": {"parameters": {}}, "kernelspec": {"name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    executed.write_text(json.dumps(notebook))
    clean = refresh_notebooks.without_papermill_metadata(executed)
    assert "papermill" not in clean.metadata and clean.metadata.kernelspec.name == "python3"
    assert clean.cells[0].metadata == {"tags": ["x"]} and clean.cells[1].metadata == {}
