"""Per-epoch checkpoints of a run (autolog's `checkpoints/epoch_N/checkpoint.pth`, N from 0). A
wrong run id, a missing epoch or a run without checkpoints raises an error saying what exists."""

import mlflow
from mlflow.entities import Run

from custom_module.config import MONITOR
from custom_module.module import TransformerModule
from custom_module.tracking import BEST_EPOCH_TAG, get_run


def checkpoint_paths(run: str | Run) -> dict[int, str]:
    """Epoch -> artifact path of its checkpoint file, ascending; LookupError for an unknown run.
    Only files count: autolog tags a checkpoint before it uploads it, and a run may die between."""
    run_id, client = get_run(run).info.run_id, mlflow.MlflowClient()
    paths = {}
    for folder in client.list_artifacts(run_id, "checkpoints"):
        name = folder.path.rsplit("/", 1)[-1]
        if folder.is_dir and name.startswith("epoch_"):
            files = [f.path for f in client.list_artifacts(run_id, folder.path)]
            checkpoints = [path for path in files if path.endswith(".pth")]
            if checkpoints:
                paths[int(name.removeprefix("epoch_"))] = checkpoints[0]
    return dict(sorted(paths.items()))


def logged_epochs(run: str | Run) -> list[int]:
    """Epochs with a checkpoint in the run, ascending; LookupError for an unknown run."""
    return list(checkpoint_paths(run))


def load_epoch(run: str | Run, epoch: int, epochs: list[int] | None = None) -> TransformerModule:
    """The module as it was at the end of `epoch`, in eval mode, via `mlflow.pytorch`; `epochs`:
    the run's `logged_epochs`, when the caller has them already."""
    run = get_run(run)
    run_id, epochs = run.info.run_id, logged_epochs(run) if epochs is None else epochs
    if not epochs:
        raise LookupError(
            f"Run {run_id} has no checkpoints: it was not trained with checkpoint autologging "
            "(`custom_module.train`), or it died before its first epoch ended."
        )
    if epoch not in epochs:
        raise LookupError(f"Run {run_id} has no checkpoint for epoch {epoch}; logged: {epochs}.")
    return mlflow.pytorch.load_checkpoint(TransformerModule, run_id, epoch=epoch).eval()


def best_epoch(run_id: str, monitor: str = MONITOR) -> int:
    """The checkpointed epoch with the highest `monitor` (earliest on a tie); not usually the
    last, as early stopping does not restore the best weights."""
    epochs = set(logged_epochs(run_id))
    history = mlflow.MlflowClient().get_metric_history(run_id, monitor)
    scores = {metric.step: metric.value for metric in history if metric.step in epochs}
    if not scores:
        raise LookupError(f"Run {run_id} has no {monitor} for any checkpointed epoch.")
    return max(sorted(scores), key=scores.__getitem__)


def tag_best_epoch(run_id: str, monitor: str = MONITOR) -> int:
    """Record the best epoch as the tag `best_epoch` (training does, once) and return it; under
    torchrun only rank 0, whose active run it is, writes the tag."""
    epoch = best_epoch(run_id, monitor)
    if mlflow.active_run() is None or mlflow.active_run().info.run_id == run_id:
        mlflow.MlflowClient().set_tag(run_id, BEST_EPOCH_TAG, str(epoch))
    return epoch


def tagged_best_epoch(run: str | Run) -> int:
    """The best epoch that training recorded on the run (the `best_epoch` tag)."""
    run = get_run(run)
    tags, run_id = run.data.tags, run.info.run_id
    if BEST_EPOCH_TAG not in tags:
        raise LookupError(
            f"Run {run_id} has no {BEST_EPOCH_TAG!r} tag: its training did not finish. Resume it "
            f"with `python -m custom_module.train --resume {run_id}`."
        )
    return int(tags[BEST_EPOCH_TAG])


def download_latest_checkpoint(run_id: str, folder: str) -> str:
    """The last checkpoint a run logged before it stopped, downloaded into `folder`, to resume;
    ValueError for a finished run, LookupError for one that died before its first checkpoint."""
    run = get_run(run_id)
    if run.info.status == "FINISHED":
        raise ValueError(f"Run {run_id} already finished; there is nothing to resume.")
    paths = checkpoint_paths(run_id)
    if not paths:
        raise LookupError(f"Run {run_id} logged no checkpoint before it stopped: start a new run.")
    return mlflow.MlflowClient().download_artifacts(run_id, paths[max(paths)], folder)
