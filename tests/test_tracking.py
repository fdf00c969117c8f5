"""The store helpers: one store wherever a notebook starts, and finding the run to work on."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from custom_module import runs
from custom_module.tracking import (
    DEFAULT_STORE,
    configure_tracking,
    find_run,
    tracking_uri,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_default_store_is_the_sqlite_file_at_the_repo_root(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri() == f"sqlite:///{REPO_ROOT / 'mlflow.db'}"
    assert DEFAULT_STORE.parent == REPO_ROOT


def test_mlflow_tracking_uri_overrides_the_default(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri() == "http://127.0.0.1:5000"


def test_new_experiments_keep_their_artifacts_beside_the_store(tracking_store: str) -> None:
    mlflow.set_experiment(configure_tracking("tracking-artifacts"))
    location = mlflow.get_experiment_by_name("tracking-artifacts").artifact_location
    store_folder = Path(tracking_store.removeprefix("sqlite:///")).parent
    assert location == (store_folder / "mlartifacts").as_uri()


def test_find_run_takes_the_id_else_the_latest_finished_run(tracking_store: str) -> None:
    mlflow.set_experiment(configure_tracking("tracking-latest"))
    with mlflow.start_run() as older:
        pass
    with mlflow.start_run() as finished:
        pass
    with mlflow.start_run():  # e.g. a crashed or still-running training run
        assert find_run(None, "tracking-latest").info.run_id == finished.info.run_id
    assert find_run(older.info.run_id, "tracking-latest").info.run_id == older.info.run_id


def test_a_missing_experiment_says_what_to_run(tracking_store: str) -> None:
    with pytest.raises(LookupError, match="run notebook 02"):
        find_run(None, "never-created")


def test_an_unknown_run_id_names_the_store(tracking_store: str) -> None:
    with pytest.raises(LookupError, match="No run"):
        find_run("0" * 32, "tracking-latest")


def test_system_metrics_show_each_gpus_series_where_mlflow_sampled_them(tracking_store):
    with mlflow.start_run(run_name="gpu samples") as run:
        for step, timestamp in enumerate((0, 60_000)):  # two samples a minute apart
            values = {
                "system/cpu_utilization_percentage": 50.0,
                "system/system_memory_usage_megabytes": 900.0,
                "system/gpu_0_utilization_percentage": 97.0,
                "system/gpu_0_memory_usage_megabytes": 4000.0 + step,
                "system/gpu_0_power_usage_watts": 70.0,  # not one of the columns shown
            }
            for name, value in values.items():
                mlflow.MlflowClient().log_metric(run.info.run_id, name, value, timestamp, step)
    table = runs.system_metrics(run.info.run_id)
    assert list(table.columns) == [
        "CPU utilisation (%)",
        "memory used (MB)",
        "GPU 0 memory (MB)",
        "GPU 0 utilisation (%)",
    ]
    assert table.index.tolist() == [0.0, 1.0]
    assert table["GPU 0 memory (MB)"].tolist() == [4000, 4001]


def test_run_origin_names_the_run_and_what_it_changed_from_its_preset(tracking_store):
    """An exercise's run (a rank of 2 on the workshop preset) says so where 03 and 04 use it."""
    import dataclasses

    from custom_module.config import preset
    from custom_module.tracking import CONFIG_ARTIFACT, run_origin

    for overrides in ({"r": 2}, {}):
        config = preset("workshop", run_name="exercise", **overrides)
        with mlflow.start_run(run_name="exercise") as run:
            mlflow.log_dict(dataclasses.asdict(config), CONFIG_ARTIFACT)
        origin = run_origin(mlflow.get_run(run.info.run_id))
        assert (origin["name"], origin["run_id"]) == ("exercise", run.info.run_id)
        assert (origin["preset"], origin["changed"]) == ("workshop", overrides)


def test_run_url_points_at_the_page_of_the_run_wherever_the_store_is(tracking_store, monkeypatch):
    from custom_module import tracking

    with mlflow.start_run() as run:
        pass
    held = mlflow.get_run(run.info.run_id)
    page = f"experiments/{held.info.experiment_id}/runs/{held.info.run_id}"
    # A local store: where `make ui` serves it, on the Makefile's port.
    port = next(
        line
        for line in (REPO_ROOT / "Makefile").read_text().splitlines()
        if line.startswith("UI_PORT ?=")
    )
    assert f"http://127.0.0.1:{port.split('=')[1].strip()}" == tracking.UI_ADDRESS
    assert tracking.run_url(held) == f"{tracking.UI_ADDRESS}/#/{page}"
    # A tracking server: its own address.
    assert tracking.run_url(held, "https://mlflow.example.com/") == (
        f"https://mlflow.example.com/#/{page}"
    )
    # Databricks: the workspace's host.
    monkeypatch.setenv("DATABRICKS_HOST", "https://dbc-1234.cloud.databricks.com/")
    assert tracking.run_url(held, "databricks") == (
        f"https://dbc-1234.cloud.databricks.com/ml/{page}"
    )
