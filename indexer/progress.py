"""Progress of an indexing run: a live bar on a terminal, silence otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Protocol

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)


class IndexProgress(Protocol):
    def start(self, estimate_total: Callable[[], int] | None = None) -> None:
        """Begin; `estimate_total` counts the documents ahead, called only by progress that shows an ETA."""
    def advance(self, documents: int = 0, passages: int = 0) -> None: ...
    def skipped(self, path: str, reason: str) -> None: ...
    def finish(self) -> None: ...


class NullProgress:
    """Reports nothing: for libraries, tests and non-terminal output."""

    def start(self, estimate_total: Callable[[], int] | None = None) -> None:
        pass

    def advance(self, documents: int = 0, passages: int = 0) -> None:
        pass

    def skipped(self, path: str, reason: str) -> None:
        pass

    def finish(self) -> None:
        pass


class TerminalProgress:
    """Documents done (of the total when known), passages/s and ETA, on stderr."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._progress = Progress(
            TextColumn("[bold]indexing"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("docs · {task.fields[passages]} passages · {task.fields[rate]} passages/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self._task = TaskID(0)  # add_task's id, once `start` has run
        self._passages = 0
        self._started = 0.0

    def start(self, estimate_total: Callable[[], int] | None = None) -> None:
        self._started = time.perf_counter()
        self._progress.start()
        total = estimate_total() if estimate_total else None
        self._task = self._progress.add_task("index", total=total, passages=0, rate="-")

    def advance(self, documents: int = 0, passages: int = 0) -> None:
        self._passages += passages
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        self._progress.update(
            self._task, advance=documents, passages=self._passages, rate=f"{self._passages / elapsed:.0f}"
        )

    def skipped(self, path: str, reason: str) -> None:
        self._progress.console.print(f"[yellow]skipped[/] {path}: {reason}", highlight=False)

    def finish(self) -> None:
        self._progress.stop()


def progress_for_terminal() -> IndexProgress:
    """A live bar when stderr is a terminal, else nothing (logs and pipes stay clean)."""
    return TerminalProgress() if sys.stderr.isatty() else NullProgress()
