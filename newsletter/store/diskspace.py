"""Which limit stopped a write to the SQLite file: a full disk, the user's quota or `ulimit -f`.

SQLite reports a write refused with EFBIG or EDQUOT as a plain "disk I/O error" (and a short
write as SQLITE_FULL whatever the cause), so its I/O errors are told apart by looking: at the
file size limit of this process, at the sizes of the database's files and at the free space.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

try:
    import resource
except ImportError:  # Windows: no `ulimit -f`
    resource = None  # type: ignore[assignment]  # the module or nothing, checked where used

SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})
_LIMIT_SLACK = 256 * 1024  # a write that failed may have been this far below the limit (WAL frames)
_LOW_SPACE = 1024 * 1024
_AGAIN = "run the same command again afterwards: it resumes, and nothing already recorded is lost"


def out_of_space(cause: BaseException, path: Path) -> tuple[str, str] | None:
    """What ran out and how to fix it, if this SQLite or OS error is a write refused for space."""
    name = getattr(cause, "sqlite_errorname", "") or ""
    number = getattr(cause, "errno", None)
    if not (name.startswith(("SQLITE_FULL", "SQLITE_IOERR")) or number in SPACE_ERRNOS):
        return None
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0] if resource is not None else -1
    if number == errno.EFBIG or (limit >= 0 and _largest(path) + _LIMIT_SLACK >= limit):
        return (
            f"the database reached the largest file this process may write ({limit} bytes, `ulimit -f`)",
            f"raise the limit (`ulimit -f unlimited` in the job that runs it); {_AGAIN}",
        )
    if number == errno.EDQUOT:
        return (
            "the disk quota of this user is used up where the database is",
            f"free space under the quota (or set 'ledger' to a file on another disk); {_AGAIN}",
        )
    if name.startswith("SQLITE_FULL") or number == errno.ENOSPC or _free(path) < _LOW_SPACE:
        return (
            "the disk holding the database is full",
            f"free space there (or set 'ledger' to a file on another disk); {_AGAIN}",
        )
    return None


def _largest(path: Path) -> int:
    """The largest of the database's files (the database, its -wal and -journal)."""
    sizes = [0]
    for name in (path.name, f"{path.name}-wal", f"{path.name}-journal"):
        try:
            sizes.append((path.parent / name).stat().st_size)
        except OSError:
            continue
    return max(sizes)


def _free(path: Path) -> int:
    try:
        return shutil.disk_usage(path.parent).free
    except OSError:
        return _LOW_SPACE  # cannot look: not a reason to blame the disk
