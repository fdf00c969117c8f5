"""Screenshots of the MLflow UI for the README's "Where to look in MLflow", taken from a real store.

    .venv/bin/pip install -r requirements-docs.txt     # Playwright's Python package
    apt-get install -y chromium                        # the browser it drives (not downloaded)
    .venv/bin/python scripts/mlflow_screenshots.py     # the repository's store -> docs/images/
    .venv/bin/python scripts/mlflow_screenshots.py --store sqlite:////path/to/mlflow.db

Pictures drawn by hand go stale with every MLflow release; these are re-taken by one command. The
script starts `mlflow ui` on the store, drives headless Chromium through the pages a learner
opens (run overview, model and system metrics, the checkpoints among the artifacts, the sweep's
child runs side by side) and stops everything it started, even when a page fails.

The store is only read: job execution is off (no background consumers writing to it) and the
browser is refused every request that would change something (setting a tag, deleting a run).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlparse

import psutil

from custom_module.processes import ensure_gone, free_port, serving
from custom_module.tracking import BEST_EPOCH_TAG, DEFAULT_STORE, PARENT_TAG, SQLITE_PREFIX

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from playwright.sync_api import BrowserContext, Page, Request, Route

REPO_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 900}
TIMEOUT_MS = 180_000  # for any one page, click or chart
MAX_PNG_BYTES = 200_000
# What MLflow's design system shows while data loads: spinners and skeleton placeholders.
BUSY = '[aria-busy="true"], [class*="-spin-spinning"], [class*="skeleton-active"]'
CHART_CARD = '[data-testid="experiment-view-compare-runs-card"]'
# Browser requests that only read; every other non-GET request to the server is refused.
READ_ONLY_POST = re.compile(r"/(search[\w-]*|get[\w-]*|list[\w-]*|graphql)$")
# MLflow 3.17's assistant panel opens by itself in a fresh browser profile and covers a third of
# the page; these are the keys the UI keeps once a user has closed it.
CLOSED_ASSISTANT = """
localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');
localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');
"""
HOW_TO_SWITCH = (
    "MLflow 3 opens experiments in its GenAI view: click 'Model training' in the "
    "GenAI | Model training switch at the top of the left sidebar to see runs, metrics and "
    "artifacts; the browser remembers the choice."
)


@dataclass
class Target:
    """Where the pictures come from: the run and, when there is a sweep, its parent and children."""

    base_url: str
    experiment_id: str
    run_id: str
    best_epoch: str | None
    sweep: tuple[str, str, list[str]] | None  # (experiment id, parent run id, child run ids)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=f"{SQLITE_PREFIX}{DEFAULT_STORE}")
    parser.add_argument("--experiment", default="lexglue-unfair-tos-lora")
    parser.add_argument("--run-id", help="default: the latest finished run of --experiment")
    parser.add_argument("--compare-experiment", default="lexglue-unfair-tos-workshop")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "docs" / "images")
    parser.add_argument("--port", type=int, help="default: a free port")
    return parser.parse_args()


def require_tools() -> None:
    """Fail before starting anything when the browser or its driver is missing."""
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("Playwright: .venv/bin/pip install -r requirements-docs.txt")
    if not CHROMIUM.exists():
        missing.append(f"Chromium ({CHROMIUM}): apt-get install -y chromium")
    if missing:
        sys.exit("Missing, install and re-run:\n  " + "\n  ".join(missing))


def require_store(store: str) -> None:
    """`mlflow ui` would create an empty database at a mistyped sqlite path; refuse instead."""
    if store.startswith(SQLITE_PREFIX) and not Path(store.removeprefix(SQLITE_PREFIX)).is_file():
        sys.exit(f"No store at {store}: run the tutorial first (make tutorial) or pass --store.")


def ui_command(store: str, port: int) -> tuple[list[str], dict]:
    """`mlflow ui` with one worker and no job execution: the server only has to answer one
    browser, and the job runner's huey consumers (seven of them) would cost CPU and could write
    to the store."""
    env = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store]
    return command + ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"], env


def find_target(base_url: str, args: argparse.Namespace) -> Target:
    """Ask the running server (not the store) for the run, its best epoch and the sweep."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=base_url)
    experiment = client.get_experiment_by_name(args.experiment)
    if experiment is None:
        names = [e.name for e in client.search_experiments()]
        sys.exit(f"No experiment {args.experiment!r} in {args.store}; there are {names}.")
    if args.run_id:
        try:
            run = client.get_run(args.run_id)
        except MlflowException:
            sys.exit(f"No run {args.run_id} in {args.store}: leave out --run-id for the latest.")
    else:
        runs = client.search_runs(
            [experiment.experiment_id],
            "attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not runs:
            sys.exit(f"No finished run in {args.experiment!r}: train one, or pass --run-id.")
        run = runs[0]
    return Target(
        base_url,
        experiment.experiment_id,
        run.info.run_id,
        run.data.tags.get(BEST_EPOCH_TAG),
        find_sweep(client, args.compare_experiment),
    )


def find_sweep(client: MlflowClient, experiment_name: str) -> tuple[str, str, list[str]] | None:
    """The latest parent run with finished children: notebook 05's sweep."""
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return None
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])
    children: dict[str, list[str]] = {}
    for run in runs:
        parent = run.data.tags.get(PARENT_TAG)
        if parent and run.info.status == "FINISHED":
            children.setdefault(parent, []).append(run.info.run_id)
    parents = [run.info.run_id for run in runs if run.info.run_id in children]
    if not parents:
        return None
    return experiment.experiment_id, parents[0], children[parents[0]]


def refuse_writes(context: BrowserContext, refused: list[str]) -> None:
    """Let the browser read anything and change nothing, whatever a click would do."""

    def guard(route: Route, request: Request) -> None:
        path = urlparse(request.url).path
        reads = request.method in ("GET", "HEAD", "OPTIONS") or (
            request.method == "POST" and READ_ONLY_POST.search(path) and not _mutation(request)
        )
        if reads:
            route.continue_()
        else:
            refused.append(f"{request.method} {path}")
            route.abort()

    context.route(re.compile(r"/(ajax-api|api|graphql)"), guard)


def _mutation(request: Request) -> bool:
    try:
        query = json.loads(request.post_data or "{}").get("query", "")
    except (ValueError, AttributeError):
        return True
    return query.lstrip().startswith("mutation")


def settle(page: Page, charts: bool = False) -> None:
    """Wait until nothing is loading and, on a chart page, every chart card in view has its
    lines drawn; then until the page stops changing. A screenshot of a spinner teaches nothing.
    (Not Playwright's "networkidle": the UI's telemetry worker keeps a request open forever.)"""
    page.wait_for_function(
        """([busy, cardSelector, charts]) => {
            const shown = (e) => e.getClientRects().length > 0;
            if ([...document.querySelectorAll(busy)].some(shown)) return false;
            const cards = [...document.querySelectorAll(cardSelector)].filter((card) => {
                const box = card.getBoundingClientRect();
                return box.width > 0 && box.top < innerHeight && box.bottom > 0;
            });
            const drawn = (card) => card.querySelector('.js-plotly-plot g.trace') !== null;
            return !charts || (cards.length > 0 && cards.every(drawn));
        }""",
        arg=[BUSY, CHART_CARD, charts],
        polling=250,
    )
    for button in page.get_by_role("button", name="Got it").all():  # feature tours
        if button.is_visible():
            button.click()
    page.mouse.move(VIEWPORT["width"] - 5, VIEWPORT["height"] // 2)  # no hover tooltips
    before, deadline = None, time.monotonic() + 30
    while time.monotonic() < deadline:  # chart transitions, fading tooltips, late rows
        page.wait_for_timeout(1000)
        now = page.evaluate("() => document.body.innerHTML.length")
        if now == before:
            return
        before = now


def save(page: Page, path: Path) -> int:
    """Screenshot to `path`, reduced to a 256-colour palette only if it exceeds the budget."""
    page.screenshot(path=path, animations="disabled", caret="hide")
    if path.stat().st_size > MAX_PNG_BYTES:
        from PIL import Image

        with Image.open(path) as image:
            palette = image.convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE)
        palette.save(path, optimize=True)
    return path.stat().st_size


def switch_to_model_training(page: Page, target: Target) -> None:
    """Click the GenAI | Model training switch, as a learner would once."""
    page.goto(f"{target.base_url}/#/experiments/{target.experiment_id}/runs/{target.run_id}")
    switch = page.get_by_role("button", name="Model training", exact=True)
    try:
        switch.click()
        page.wait_for_url(re.compile(r"workflowType=machine_learning"))
    except Exception as error:  # a later UI without the switch: the pictures show what it shows
        print(f"note: could not click 'Model training' ({type(error).__name__}); going on")
    print(HOW_TO_SWITCH)


def run_page(page: Page, target: Target, tab: str = "") -> None:
    page.goto(f"{target.base_url}/#/experiments/{target.experiment_id}/runs/{target.run_id}{tab}")


def show_overview(page: Page, target: Target) -> None:
    """Tags, registered model version and the first parameters; the metrics table is narrowed
    to the F1 scores so that the parameters fit on the screen."""
    run_page(page, target)
    page.get_by_placeholder("Search metrics").fill("F1_Score")
    page.get_by_text(re.compile(r"^Parameters \(\d+\)$")).wait_for()
    settle(page)


def show_charts(page: Page, target: Target, tab: str, search: str) -> None:
    """A run's metric charts, narrowed by the tab's own chart search (a regular expression)."""
    run_page(page, target, tab)
    page.get_by_placeholder("Search metric charts").fill(search)
    settle(page, charts=True)


def show_artifacts(page: Page, target: Target) -> None:
    """The artifact tree with `checkpoints/` open and the best epoch's folder unfolded."""
    run_page(page, target, "/artifacts")
    page.get_by_text("checkpoints", exact=True).click()
    epochs = page.get_by_text(re.compile(r"^epoch_\d+$"))
    epochs.first.wait_for()
    best = page.get_by_text(f"epoch_{target.best_epoch}", exact=True)
    (best if target.best_epoch and best.count() else epochs.last).click()
    page.get_by_text("checkpoint.pth", exact=True).first.wait_for()
    settle(page)


def show_sweep(page: Page, target: Target) -> None:
    """The runs table in chart view, filtered to the sweep: the parent unfolded, its children
    drawn, the parent itself (it logs no metrics) hidden from the charts."""
    experiment_id, parent, children = target.sweep
    search = quote(f"tags.`{PARENT_TAG}` = '{parent}'")
    page.goto(
        f"{target.base_url}/#/experiments/{experiment_id}/runs"
        f"?compareRunsMode=CHART&searchFilter={search}"
    )
    parent_cell = page.locator("[role=gridcell]", has=page.locator(f'a[href$="/runs/{parent}"]'))
    parent_cell.first.locator("button").first.click()  # the + unfolds children
    page.locator(f'[row-id="{children[0]}"]').first.wait_for()
    page.locator(f'[row-id="{parent}"] label:has(.is-visibility-toggle-checkbox)').first.click()
    page.get_by_placeholder("Search metric charts").fill("^Val_(F1_Score|Loss|PR_AUC)$")
    settle(page, charts=True)


def crash_reporters() -> list[psutil.Process]:
    """Chromium's crashpad handlers; they exit a second or two after the browser."""
    return [p for p in psutil.process_iter(["name"]) if p.info["name"] == "chrome_crashpad_handler"]


def take_screenshots(target: Target, output: Path) -> dict[Path, int]:
    """One browser, one page, the pages in the order a learner meets them; sizes by file."""
    from playwright.sync_api import sync_playwright

    shots = {
        "run_overview.png": show_overview,
        "model_metrics.png": lambda page, target: show_charts(
            page, target, "/model-metrics", "^(Train|Val)_(F1_Score|Loss|PR_AUC)$"
        ),
        "system_metrics.png": lambda page, target: show_charts(
            page, target, "/system-metrics", "cpu|gpu|memory"
        ),
        "artifacts.png": show_artifacts,
    }
    if target.sweep:
        shots["compare_runs.png"] = show_sweep
    output.mkdir(parents=True, exist_ok=True)
    sizes: dict[Path, int] = {}
    refused: list[str] = []
    before = {p.pid for p in [*psutil.Process().children(), *crash_reporters()]}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT)
            context.add_init_script(CLOSED_ASSISTANT)
            refuse_writes(context, refused)
            # Generous: on a small machine the UI may share the CPU with a training run.
            context.set_default_timeout(TIMEOUT_MS)
            context.set_default_navigation_timeout(TIMEOUT_MS)
            page = context.new_page()
            switch_to_model_training(page, target)
            for name, show in shots.items():
                try:
                    show(page, target)
                except Exception:
                    failed = Path(tempfile.gettempdir()) / f"failed_{name}"
                    page.screenshot(path=failed)
                    print(f"{name} failed; the page at that moment: {failed}", file=sys.stderr)
                    raise
                sizes[output / name] = save(page, output / name)
        finally:
            # Playwright's driver, Chromium's processes and its crash reporters (these leave the
            # tree at once: re-parented to init), listed while the browser still runs
            driver = [p for p in psutil.Process().children() if p.pid not in before]
            started = [*driver, *(p for d in driver for p in d.children(recursive=True))]
            started += [p for p in crash_reporters() if p.pid not in before]
            browser.close()
    ensure_gone(started, "Chromium")
    for request in sorted(set(refused)):
        print(f"note: refused a request that would change the store: {request}")
    return sizes


def shoot(base_url: str, args: argparse.Namespace) -> dict[Path, int]:
    """Everything between starting the server and stopping it."""
    target = find_target(base_url, args)
    print(f"Run {target.run_id} of {args.experiment!r}")
    if target.sweep is None:
        print(
            f"note: no sweep (a parent run with finished child runs) in "
            f"{args.compare_experiment!r}; skipping compare_runs.png (notebook 05 makes one)"
        )
    return take_screenshots(target, args.output)


def main() -> None:
    args = parse_args()
    require_tools()
    require_store(args.store)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup below
    port = args.port or free_port()
    base_url = f"http://127.0.0.1:{port}"
    print(f"Starting mlflow ui on {args.store} at {base_url}")
    command, env = ui_command(args.store, port)
    try:
        with serving(command, f"{base_url}/health", env):
            sizes = shoot(base_url, args)
    finally:
        ensure_gone(psutil.Process().children(recursive=True), "this script")
    print("Stopped mlflow ui and the browser; no process they started is left.")
    for path, size in sizes.items():
        print(f"{path}  {size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
