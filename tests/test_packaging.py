"""pyproject.toml says what the package needs, as ranges; requirements*.txt pin the set CI installs.
The two are one source read twice: the same packages, and every pin inside its range. And every
package the code imports is declared."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO_ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
SELF = canonicalize_name(PROJECT["name"])
# Which pinned file holds which of pyproject's groups ("" is the package's own dependencies).
PINNED_IN = {
    "requirements.txt": ("", "onnx", "batch", "lab"),
    "requirements-dev.txt": ("dev",),
    "requirements-docs.txt": ("docs",),
}


def declared(group: str) -> dict[str, Requirement]:
    """A group's requirements by name, without the extras that name this package itself."""
    lines = PROJECT["dependencies"] if group == "" else PROJECT["optional-dependencies"][group]
    requirements = (Requirement(line) for line in lines)
    return {canonicalize_name(r.name): r for r in requirements if canonicalize_name(r.name) != SELF}


def pinned(file: str) -> dict[str, Version]:
    pins = {}
    for line in (REPO_ROOT / file).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-r"):
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", f"{file}: {line} is not an exact pin"
            pins[canonicalize_name(requirement.name)] = Version(specifier.version)
    return pins


@pytest.mark.parametrize("file", PINNED_IN)
def test_each_pinned_file_pins_exactly_its_groups_inside_their_ranges(file):
    ranges = {name: r for group in PINNED_IN[file] for name, r in declared(group).items()}
    pins = pinned(file)
    assert sorted(pins) == sorted(ranges), "pyproject.toml and the pins name different packages"
    outside = {
        name: str(ranges[name].specifier)
        for name, v in pins.items()
        if not ranges[name].specifier.contains(v, prereleases=True)
    }
    assert not outside, f"{file} pins outside pyproject.toml's ranges: {outside}"


def test_the_extras_build_on_each_other_and_every_group_is_pinned():
    extras = PROJECT["optional-dependencies"]
    assert set(extras) == {"onnx", "batch", "lab", "dev", "docs"}
    assert f"{PROJECT['name']}[batch,onnx]" in extras["lab"]
    assert f"{PROJECT['name']}[lab]" in extras["dev"]
    assert {g for groups in PINNED_IN.values() for g in groups} == {"", *extras}


def test_torch_and_lightning_stay_inside_what_mlflow_autolog_is_tested_with():
    from mlflow.ml_package_versions import _ML_PACKAGE_VERSIONS

    for flavor, name in (("pytorch", "torch"), ("pytorch-lightning", "pytorch-lightning")):
        tested = _ML_PACKAGE_VERSIONS[flavor]["autologging"]
        specifier = declared("")[name].specifier
        assert specifier.contains(tested["minimum"])
        newest = Version(tested["maximum"])  # a release line: 2.14.0 stands for 2.14.x
        assert not specifier.contains(f"{newest.major}.{newest.minor + 1}.0")


def test_colabs_stack_is_admitted_by_the_ranges():
    """The setup cell installs the package against constraints/colab.txt: a version there outside
    our ranges would make pip fail on Colab."""
    ranges = {name: r for group in ("", "batch") for name, r in declared(group).items()}
    lines = (REPO_ROOT / "constraints" / "colab.txt").read_text().splitlines()
    colab = [Requirement(line) for line in lines if line and not line.startswith("#")]
    assert {"torch", "numpy", "pandas", "ipykernel", "ipython"} <= {r.name for r in colab}
    for requirement in colab:
        (specifier,) = requirement.specifier
        if requirement.name in ranges:
            assert ranges[requirement.name].specifier.contains(specifier.version), requirement


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_every_package_the_code_imports_is_declared():
    sources = [*(REPO_ROOT / "custom_module").glob("*.py"), REPO_ROOT / "data.py"]
    imported = set().union(*map(imports_of, sources)) - set(sys.stdlib_module_names)
    imported -= {"custom_module", "data", "google"}  # ours, and Colab's own `google.colab`
    distributions = packages_distributions()
    all_declared = {name for group in ("", "onnx", "batch") for name in declared(group)}
    missing = {
        module
        for module in imported
        if not {canonicalize_name(d) for d in distributions.get(module, [module])} & all_declared
    }
    assert not missing, f"imported but not declared in pyproject.toml: {sorted(missing)}"
