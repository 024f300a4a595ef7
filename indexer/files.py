"""Which files a run reads: folders walked in name order, hidden entries and excluded folders left out, and every
entry that is not a regular file (a FIFO, a socket, a device, a link not followed) skipped with its reason."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from collections.abc import Iterator, Sequence

from bertsearch.errors import BertsearchError
from bertsearch.indexer.filenames import file_name_text
from bertsearch.types import SkippedFile

# Files read whole (text, HTML, PDF, JSON) are refused above this size; record files stream.
DEFAULT_MAX_FILE_BYTES = 50 * 1024 * 1024


def check_paths_exist(paths: Sequence[Path]) -> None:
    """BertsearchError naming every path that does not exist, so a run fails before loading anything."""
    missing = [str(path) for path in paths if not Path(path).exists()]
    if missing:
        raise BertsearchError(f"no such file or folder: {', '.join(missing)}")


def files_to_read(roots: Sequence[Path], exclude: Sequence[Path]) -> Iterator[tuple[Path, Path | SkippedFile]]:
    """(root, file) for every regular file to read under `roots`, and (root, skip) for every entry that is not one.

    A file named directly is read even through a link; inside a folder, see `_walk`.
    """
    excluded = {Path(path).resolve() for path in exclude}
    for root in roots:
        if root.is_dir():
            for file in _walk(root, root.resolve(), excluded):
                yield root, file
            continue
        try:
            reason = _not_a_regular_file(os.stat(root).st_mode)
        except OSError as exc:
            reason = os_error_reason(exc)
        yield root, SkippedFile(shown(root), reason) if reason else root


def _walk(folder: Path, top: Path, excluded: set[Path]) -> Iterator[Path | SkippedFile]:
    """Regular files under `folder` in name order, depth first, leaving out hidden entries such as a `.bertsearch`
    index; every other entry that is not read (a FIFO, a socket, a device, a link not followed) is skipped with
    its reason, and never opened.

    A link to a file inside `top` (the indexed folder, resolved) is read under the link's own name. Links to
    folders are not followed, so a link cycle cannot make the walk endless; broken links, link loops and links
    out of `top` are skipped.
    """
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError as exc:
        yield SkippedFile(shown(folder), os_error_reason(exc))
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = folder / entry.name
        try:
            if entry.is_symlink():
                reason = _link_problem(path, top)
            elif entry.is_dir(follow_symlinks=False):
                if path.resolve() not in excluded:
                    yield from _walk(path, top, excluded)
                continue
            else:
                reason = _not_a_regular_file(entry.stat(follow_symlinks=False).st_mode)
        except OSError as exc:
            reason = os_error_reason(exc)
        yield SkippedFile(shown(path), reason) if reason else path


def _link_problem(link: Path, top: Path) -> str | None:
    """Why the file `link` points at is not read, or None for a regular file inside `top`."""
    try:
        mode = os.stat(link).st_mode
    except FileNotFoundError:
        return f"broken link (to {file_name_text(os.readlink(link))})"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "link loop (the link leads back to itself)"
        raise
    target = Path(os.path.realpath(link))
    if target != top and top not in target.parents:
        return f"link out of the indexed folder (to {shown(target)}), not followed"
    kind = _special_kind(mode)
    return f"link to {kind}, not followed" if kind else None


def _not_a_regular_file(mode: int) -> str | None:
    """Why an entry of this `st_mode` is not read, or None for a regular file."""
    kind = _special_kind(mode)
    return f"not a regular file ({kind})" if kind else None


def _special_kind(mode: int) -> str | None:
    """What an entry that is not a regular file is (opening a FIFO would wait for a writer); None for a file."""
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    return next((name for test, name in kinds if test(mode)), "a special file")


def shown(path: Path) -> str:
    """`path`, absolute, as ids and sources show file names."""
    return file_name_text(str(path.absolute()))


def os_error_reason(exc: BaseException) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"unreadable ({detail})"
