"""The one atomic file writer: readers see the old file or the new one, never half, and a failure
leaves the old file and no temporary behind."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import TextIO

import pytest

from newsletter.files import atomic_write, atomic_write_bytes, atomic_write_text

PACKAGE = Path(__file__).resolve().parents[1] / "newsletter"


def test_text_and_bytes_replace_the_file_and_keep_its_permissions(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "folder" / "list.csv"
    atomic_write_text(path, "a\r\nb\n")
    assert path.read_bytes() == b"a\r\nb\n"  # newlines exactly as given
    path.chmod(0o640)
    atomic_write_bytes(path, b"\x00new")
    assert path.read_bytes() == b"\x00new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in path.parent.iterdir()) == ["list.csv"]


def test_a_new_file_gets_the_usual_permissions_not_the_temp_files(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    atomic_write_text(tmp_path / "new.txt", "x")
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o666 & ~umask


def test_a_failure_while_writing_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "papers.jsonl"
    path.write_text("old\n", encoding="utf-8")

    def half_then_fail(out: TextIO) -> None:
        out.write("new and half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(path, half_then_fail)
    assert path.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["papers.jsonl"]


def test_every_file_the_package_writes_goes_through_the_atomic_writer() -> None:
    direct = re.compile(r"os\.replace|\.write_text\(|\.write_bytes\(|open\([^)]*[\"'][wax]b?[\"']")
    offenders = [
        f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
        for path in PACKAGE.rglob("*.py")
        if path.name != "files.py" and path.name != "buildpool.py"  # buildpool.py opens pipes, not files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if direct.search(line)
    ]
    assert offenders == []
