"""The import layers (pyproject.toml's import-linter contracts) hold: the core never imports `indexer/`, the
applications never import `cli/`, and so on (STYLE.md, "Our shape")."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Where setuptools installs each top-level folder (pyproject.toml's package-dir).
PACKAGE_FOLDERS = {"bertsearch": "bertsearch", "indexer": "bertsearch/indexer", "cli": "bertsearch/cli"}


def installed_layout(root: Path) -> Path:
    """A copy of the sources laid out as installed: import-linter reads one package folder, and the editable
    install maps `bertsearch.indexer` and `bertsearch.cli` to the top-level folders `indexer/` and `cli/`."""
    for folder, target in PACKAGE_FOLDERS.items():
        shutil.copytree(REPO / folder, root / target, ignore=shutil.ignore_patterns("__pycache__", "static"))
    return root


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    command = "from importlinter.cli import lint_imports_command; lint_imports_command()"
    return subprocess.run(
        [sys.executable, "-c", command, str(REPO / "pyproject.toml"), "--no-cache"],
        cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True, timeout=120,
    )


def test_the_import_layers_hold(tmp_path: Path) -> None:
    run = lint_imports(installed_layout(tmp_path))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    root = installed_layout(tmp_path)
    search = root / "bertsearch" / "search.py"
    search.write_text(search.read_text() + "\nfrom bertsearch.indexer.pipeline import Indexer  # noqa: E402\n")
    run = lint_imports(root)
    assert run.returncode != 0
    assert "bertsearch.search -> bertsearch.indexer.pipeline" in run.stdout
