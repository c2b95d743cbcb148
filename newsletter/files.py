"""The one way the project writes a file: readers see the old version or the new one, never half.

Every file we write (subscriber lists, the papers cache, `papers fetch` output, archive pages
and feeds, previews) goes through `atomic_write`: a temporary file in the same folder, flushed
and fsynced, `os.replace`d over the target, then the folder fsynced so the rename survives a
power cut. On any error the temporary file is removed and the old file is left as it was.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO


def _read_umask() -> int:
    # Read once at import: os.umask can only be read by setting it, which is not thread-safe later.
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


_UMASK = _read_umask()
_PRIVATE = 0o600  # owner read and write: the ledger's, the cache's, the outbox's files


def temp_prefix(path: Path) -> str:
    """Temporary files of `path` are `.<name>.<random>.tmp`: hidden, and easy to find after a crash."""
    return f".{path.name}."


def atomic_write(
    path: Path,
    write: Callable[[TextIO], None],
    *,
    private: bool = False,
    ready: Callable[[Path], None] | None = None,
) -> None:
    """Write UTF-8 text through `write(stream)` (newlines as given) and swap it in atomically.

    `private` makes the file readable by its owner only (0600), whatever it was before. `ready`
    is given the finished temporary file just before it is swapped in (a cache notes its identity).
    """

    def fill(fd: int) -> None:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())

    _replace(path, fill, private, ready)


def atomic_write_text(path: Path, text: str, *, private: bool = False) -> None:
    """Replace `path` with `text` (UTF-8, newlines as given); `private` as in atomic_write."""

    def write(out: TextIO) -> None:
        out.write(text)

    atomic_write(path, write, private=private)


def atomic_write_bytes(path: Path, data: bytes, *, private: bool = False) -> None:
    """Replace `path` with `data`; `private` as in atomic_write."""

    def fill(fd: int) -> None:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())

    _replace(path, fill, private)


def atomic_install(finished: Path, path: Path) -> None:
    """Swap in a file another writer (SQLite) finished beside `path`: fsynced, renamed, folder synced."""
    fd = os.open(finished, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(finished, path)
    _fsync_dir(path.parent)


def _replace(
    path: Path,
    fill: Callable[[int], None],
    private: bool = False,
    ready: Callable[[Path], None] | None = None,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = _PRIVATE if private else _mode_for(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path), suffix=".tmp")
    try:
        fill(fd)  # closes fd
        os.chmod(tmp_name, mode)
        if ready is not None:
            ready(Path(tmp_name))
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _mode_for(path: Path) -> int:
    # mkstemp creates 0600; keep the file's own permissions, or the umask default for a new one.
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        return 0o666 & ~_UMASK


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
