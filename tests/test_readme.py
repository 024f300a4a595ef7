"""The README's Python example, run exactly as written, where it expects to run: beside the sample corpus."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_python_example() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", readme, flags=re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1, "the README has one Python example"
    return blocks[0]


def test_the_readme_python_example_runs_as_written(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples" / "corpus", tmp_path / "examples" / "corpus")
    done = subprocess.run([sys.executable, "-c", readme_python_example()], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    documents = sum(1 for f in (tmp_path / "examples" / "corpus").rglob("*") if f.is_file())
    assert re.fullmatch(r"\d+ documents", lines[0]) and int(lines[0].split()[0]) >= documents
    hits = lines[1:]
    assert len(hits) == 3 and all(re.match(r"-?\d\.\d{3}  ", hit) for hit in hits)
    assert "photosynthesis.md" in hits[0]
    assert (tmp_path / "my-index").is_dir()
