"""Stamp where this repository is published into the places that cannot import it.

    .venv/bin/python scripts/stamp_repository_url.py https://github.com/you/lexglue-lora-mlflow
    .venv/bin/python scripts/stamp_repository_url.py           # again, from the recorded URL
    .venv/bin/python scripts/stamp_repository_url.py --check   # exit 1 where a copy disagrees

The URL is recorded in one place, `REPOSITORY_URL` in `custom_module/tracking.py`. Two kinds of
copy cannot import it: every notebook's setup cell, which on Colab runs before the repository is
cloned (it is what clones it), and the README, which is plain text: its Colab links
(`colab.research.google.com/github/<owner>/<name>/blob/<branch>/notebooks/...`) and the clone URL
of its quick start. Given a URL, this records it and rewrites those copies; without one, it
rewrites them from the record (after a notebook was added, or the README rewritten with the
placeholder `OWNER/lexglue-lora-mlflow`).

Only the `REPOSITORY_URL = "..."` line of each notebook's first code cell changes; the rest of the
file is written back as it was read (nbformat's layout), re-read right before writing. In the
README only the links to this repository's notebooks and the URLs of this repository (as recorded,
or the placeholder) change; links to other repositories are left alone.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
CONSTANT_FILE = Path("custom_module/tracking.py")
README = Path("README.md")
NOTEBOOKS = "notebooks/*.ipynb"
PLACEHOLDER = "OWNER/lexglue-lora-mlflow"
# The recorded URL in tracking.py, and its stamped copy in a setup cell: the same line.
URL_LINE = re.compile(r'^REPOSITORY_URL = "(?P<url>[^"]*)"', re.MULTILINE)
# A Colab link to one of this repository's notebooks, whoever it names as the owner.
COLAB_LINK = re.compile(
    r"(?P<prefix>colab\.research\.google\.com/github/)(?P<repo>[^/\s)]+/[^/\s)]+)"
    r"(?=/blob/[^/\s)]+/notebooks/)"
)
GITHUB_URL = re.compile(r"https://github\.com/(?P<owner>[\w.-]+)/(?P<name>[\w.-]+?)(?:\.git)?/?")


def repository_urls(*repositories: str) -> re.Pattern:
    """`github.com/<owner>/<name>` for these `owner/name`s, and no longer name."""
    names = "|".join(re.escape(repository) for repository in repositories)
    return re.compile(rf"(?P<prefix>github\.com/)(?P<repo>{names})(?![\w-])")


def github_repository(url: str) -> tuple[str, str]:
    """`(owner, name)` of a GitHub URL; Colab opens notebooks from GitHub only."""
    match = GITHUB_URL.fullmatch(url.strip())
    if not match:
        raise ValueError(
            f"{url!r} is not a GitHub repository URL: give https://github.com/<owner>/<name> "
            "(Colab's links open notebooks from GitHub)."
        )
    return match["owner"], match["name"]


def clone_url(url: str) -> str:
    owner, name = github_repository(url)
    return f"https://github.com/{owner}/{name}.git"


def recorded_url(root: Path) -> str:
    match = URL_LINE.search((root / CONSTANT_FILE).read_text())
    if not match:
        raise ValueError(f'No `REPOSITORY_URL = "..."` line in {CONSTANT_FILE}.')
    return match["url"]


def replace_url_line(text: str, url: str, where: str) -> str:
    stamped, count = URL_LINE.subn(f'REPOSITORY_URL = "{url}"', text)
    if count != 1:
        raise ValueError(f'{where} has {count} `REPOSITORY_URL = "..."` lines; expected one.')
    return stamped


def setup_cell(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    return next(cell for cell in notebook.cells if cell.cell_type == "code")


def copies(root: Path) -> dict[str, list[str]]:
    """Each file's copies of the URL: clone URLs in the setup cells, `owner/name` in the README."""
    found = {}
    for path in sorted(root.glob(NOTEBOOKS)):
        source = setup_cell(nbformat.read(path, as_version=nbformat.NO_CONVERT)).source
        found[str(path.relative_to(root))] = [m["url"] for m in URL_LINE.finditer(source)]
    readme = (root / README).read_text()
    found[str(README)] = [
        m["repo"]
        for pattern in (COLAB_LINK, repository_urls(PLACEHOLDER))
        for m in pattern.finditer(readme)
    ]
    return found


def disagreements(root: Path) -> list[str]:
    """The copies that differ from the recorded URL, one line each; empty when all agree."""
    url = clone_url(recorded_url(root))
    owner, name = github_repository(url)
    problems = []
    for path, found in copies(root).items():
        wanted = f"{owner}/{name}" if path == str(README) else url
        if path != str(README) and not found:
            problems.append(f"{path}: its setup cell has no REPOSITORY_URL line")
        problems += [f"{path}: {copy} (recorded: {wanted})" for copy in found if copy != wanted]
    return problems


def write_if_changed(path: Path, old: str, new: str, changed: list[str], root: Path) -> None:
    if new != old:
        path.write_text(new)
        changed.append(str(path.relative_to(root)))


def stamp(root: Path, url: str | None = None) -> list[str]:
    """Record `url` (if given) and write the recorded URL into every copy; returns the files
    changed."""
    changed: list[str] = []
    constant = root / CONSTANT_FILE
    previous = "/".join(github_repository(recorded_url(root)))
    if url is not None:
        text = constant.read_text()
        stamped = replace_url_line(text, clone_url(url), str(CONSTANT_FILE))
        write_if_changed(constant, text, stamped, changed, root)
    url = clone_url(recorded_url(root))
    repository = "/".join(github_repository(url))
    for path in sorted(root.glob(NOTEBOOKS)):
        raw = path.read_text()  # re-read right before writing: others may be editing other cells
        notebook = nbformat.reads(raw, as_version=nbformat.NO_CONVERT)
        cell = setup_cell(notebook)
        cell.source = replace_url_line(cell.source, url, f"{path.name}'s setup cell")
        write_if_changed(path, raw, nbformat.writes(notebook) + "\n", changed, root)
    readme = root / README
    text = stamped = readme.read_text()
    for pattern in (COLAB_LINK, repository_urls(PLACEHOLDER, previous)):
        stamped = pattern.sub(lambda m: m["prefix"] + repository, stamped)
    write_if_changed(readme, text, stamped, changed, root)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", nargs="?", help="https://github.com/<owner>/<name>")
    parser.add_argument("--check", action="store_true", help="only report copies that differ")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (default: this)")
    args = parser.parse_args(argv)
    try:
        if args.check:
            differ = disagreements(args.root)
            print("\n".join(differ) or f"every copy says {recorded_url(args.root)}")
            return 1 if differ else 0
        for path in stamp(args.root, args.url):
            print(f"stamped {path}")
        print(f"repository: {recorded_url(args.root)}")
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
