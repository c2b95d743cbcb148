"""Files that hold addresses, delivery history or fetched data are created for their owner only.

The ledger, the log, the papers cache and the outbox are made 0600 (files) and 0700 (folders)
when this tool creates them, whatever the umask; SQLite gives its -wal and -shm files the mode
of the database. What already exists keeps the mode its owner gave it.
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> Path:
    """Create a folder (and any missing parents) that only the owner can list or enter."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    for folder in missing:
        os.chmod(folder, DIR_MODE)  # mkdir's mode is masked by the umask, and parents get none
    return path


def private_file(path: Path) -> Path:
    """Create an empty file only the owner can read, unless it exists; its folder must exist."""
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
    except FileExistsError:
        return path
    os.close(descriptor)
    os.chmod(path, FILE_MODE)  # the umask may have taken bits away, never added: this is exact
    return path
