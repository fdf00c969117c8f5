"""Install size and cold start of the torch pyfunc beside the ONNX one, each in its own fresh venv.

    python benchmarks/pyfunc_footprint.py [--runs 3] [--python python3.11] [--keep DIR]

`pyfunc_model.py` never imports torch (nor safetensors) with runtime "onnx" or "onnx-int8", so
those runtimes' environments can leave torch out. This measures what that saves. It exports an
untrained MiniLM (the configuration's default model, merged; weights do not change size or load
time) twice, for runtime "torch" and "onnx"; creates two venvs (`python -m venv`) and pip
installs into each its runtime's requirements, pinned to this environment's versions (its other
packages too, as constraints, so both resolve alike and from pip's cache); then reports each
venv's site-packages in MB (an empty venv's subtracted: pip itself) and its largest
distributions. Cold start is the wall time of a fresh `python -c` in each venv that imports
`pyfunc_model.py`, runs `load_context` on the exported folder and answers one clause: the median
of `--runs`, taking turns, then the ratio torch / onnx.

torch is pinned `torch==2.13.0`: on this machine pip finds its CPU wheel on disk (`/opt/wheels`);
elsewhere an unpinned or PyPI torch is a multi-GB CUDA build, so pass
`--torch-index https://download.pytorch.org/whl/cpu` to measure the CPU build. Takes minutes
(two installs); `--keep DIR` leaves the venvs and models in DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from importlib.metadata import distributions
from pathlib import Path

from custom_module import serving
from custom_module.module import TransformerModule
from custom_module.notebook_helpers import quiet_library_output
from data import LABEL_NAMES

RUNTIMES = tuple(serving.SERVING_PACKAGES)  # one per environment: onnx-int8 shares onnx's
# Run in each venv: load the pyfunc from its file, as MLflow's models from code does, and answer.
COLD_START = """
import importlib.util, json, sys, types
spec = importlib.util.spec_from_file_location("pyfunc_model", sys.argv[1])
pyfunc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pyfunc)
model = pyfunc.UnfairClauseClassifier()
model.load_context(types.SimpleNamespace(artifacts=json.loads(sys.argv[2])))
answer = model.predict(None, ["we may change these terms at any time without notice ."])
print(answer["prob_unfair"].iloc[0], "torch" in sys.modules)
"""
# Sizes each distribution's files in a venv (run by that venv's Python): {name: bytes}.
SIZES = """
import json, os
from importlib.metadata import distributions
sizes = {}
for dist in distributions():
    paths = (dist.locate_file(f) for f in dist.files or ())
    sizes[dist.metadata["Name"]] = sum(os.path.getsize(p) for p in paths if os.path.isfile(p))
print(json.dumps(sizes))
"""


def export(folder: Path) -> dict[str, dict[str, str]]:
    """The pyfunc's artifacts per runtime, as `serving.export_artifacts` writes them."""
    module = TransformerModule().eval()  # dropout off, as loaded checkpoints are
    module.model = module.model.merge_and_unload()
    artifacts = {}
    for runtime in RUNTIMES:
        serving.export_classifier(module, folder / runtime / "classifier", runtime)
        settings = {
            "runtime": runtime,
            "threshold": 0.5,
            "max_length": 128,
            "task": module.task,
            "pooling": module.hparams.pooling,
            "category_names": list(LABEL_NAMES),
            "pretrained_model": module.hparams.pretrained_model,
            "best_epoch": 0,
        }
        (folder / runtime / "settings.json").write_text(json.dumps(settings))
        artifacts[runtime] = {
            "classifier": str(folder / runtime / "classifier"),
            "settings": str(folder / runtime / "settings.json"),
        }
    return artifacts


def site_packages_bytes(venv: Path) -> int:
    return sum(p.stat().st_size for p in venv.glob("lib/python*/site-packages/**/*") if p.is_file())


def install(venv: Path, runtime: str, constraints: Path, python: str, torch_index: str | None):
    """A fresh venv with the runtime's requirements: (MB added, seconds, sizes by package)."""
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    empty = site_packages_bytes(venv)
    command = [str(venv / "bin/python"), "-m", "pip", "install", "-q", "-c", str(constraints)]
    command += ["--extra-index-url", torch_index] if torch_index else []
    start = time.perf_counter()
    subprocess.run(command + serving.pip_requirements(runtime), check=True)
    seconds = time.perf_counter() - start
    out = subprocess.run([str(venv / "bin/python"), "-c", SIZES], check=True, capture_output=True)
    sizes = json.loads(out.stdout)
    return (site_packages_bytes(venv) - empty) / 1e6, seconds, sizes


def cold_start(venv: Path, artifacts: dict[str, str], folder: Path) -> tuple[float, str]:
    """Seconds from a new process to its first answer, and what it printed."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [str(venv / "bin/python"), "-c", COLD_START, str(serving.PYFUNC_FILE)]
    start = time.perf_counter()
    out = subprocess.run(
        command + [json.dumps(artifacts)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=folder,  # not the repository: the venv alone must hold what the pyfunc imports
    )
    return time.perf_counter() - start, out.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="cold starts per venv (median)")
    parser.add_argument("--python", default="python3.11", help="the Python the venvs are made of")
    parser.add_argument("--torch-index", help="an extra index for torch, e.g. PyTorch's CPU one")
    parser.add_argument("--keep", type=Path, help="build in this folder and leave it there")
    args = parser.parse_args()
    quiet_library_output()
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.keep or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        artifacts = export(folder / "models")
        constraints = folder / "constraints.txt"  # this environment's versions, for every package
        constraints.write_text(
            "".join(
                f"{d.metadata['Name']}=={d.version.split('+')[0]}\n"
                for d in distributions()
                if d.metadata["Name"] != "lexglue-lora-mlflow"
            )
        )
        installed = {}
        for runtime in RUNTIMES:
            requirements = " ".join(serving.pip_requirements(runtime))
            print(f"{runtime}: pip install {requirements}", flush=True)
            installed[runtime] = install(
                folder / f"venv-{runtime}", runtime, constraints, args.python, args.torch_index
            )
        times, answers = {runtime: [] for runtime in RUNTIMES}, {}
        for _ in range(args.runs):  # taking turns, so the machine's noise hits both alike
            for runtime in RUNTIMES:
                seconds, answers[runtime] = cold_start(
                    folder / f"venv-{runtime}", artifacts[runtime], folder
                )
                times[runtime].append(seconds)
        print(f"\n{'runtime':8} {'site-packages':>14} {'install':>8} {'cold start':>11}  largest")
        for runtime, (mb, seconds, sizes) in installed.items():
            largest = sorted(sizes.items(), key=lambda item: -item[1])[:4]
            start = statistics.median(times[runtime])
            print(
                f"{runtime:8} {mb:11.0f} MB {seconds:6.0f} s {start:9.2f} s"
                f"  {', '.join(f'{name} {size / 1e6:.0f} MB' for name, size in largest)}"
            )
        (torch_mb, *_), (onnx_mb, *_) = installed["torch"], installed["onnx"]
        ratio = statistics.median(times["torch"]) / statistics.median(times["onnx"])
        size_ratio = torch_mb / onnx_mb
        print(f"\ntorch / onnx: {size_ratio:.1f}x the install size, {ratio:.1f}x the cold start")
        print("cold starts (s):", {r: [round(t, 2) for t in ts] for r, ts in times.items()})
        print("answers (prob_unfair, torch imported):", answers)


if __name__ == "__main__":
    main()
