"""scripts/elasticsearch refuses bad arguments with one `error:` line, before it starts anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "elasticsearch"


@pytest.mark.parametrize("args, message", [
    (["start", "--nodes", "0"], "--nodes: must be at least 1, got 0"),
    (["start", "--nodes", "a"], "--nodes: expected a whole number, got 'a'"),
    (["kill", "--dir", "/nonexistent"], "kill needs --node I"),
    (["restart", "--node", "1"], "restart needs --dir DIR"),
])
def test_bad_arguments_are_one_error_line(args: list[str], message: str, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=30,
                          cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [f"error: {done.stderr[7:].strip()}"] and message in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_folder_it_did_not_make_is_not_touched(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    done = subprocess.run([sys.executable, str(SCRIPT), "stop", "--dir", str(tmp_path)], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 1 and done.stderr.startswith("error: ") and "not touching it" in done.stderr
    assert (tmp_path / "keep.txt").read_text() == "mine"
