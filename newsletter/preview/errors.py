"""Errors as the preview page shows them: what, where (file and line, with the lines around it), fix."""

from __future__ import annotations

import re
import traceback
from pathlib import Path

from ..errors import NewsletterError

_FILE_LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+)$")
_CONTEXT_LINES = 3
_MAX_LINE = 300


def _template_frame(exc: BaseException) -> tuple[str, int] | None:
    """Where in a template a render failed: Jinja puts template files and lines in the traceback."""
    cause = exc.__cause__
    if cause is None or cause.__traceback__ is None:
        return None
    for frame in reversed(traceback.extract_tb(cause.__traceback__)):
        if frame.filename and not frame.filename.endswith(".py") and Path(frame.filename).is_file():
            return frame.filename, frame.lineno or 0
    return None


def _excerpt(path: Path, line: int) -> list[tuple[int, str]]:
    """The lines around the failing one, numbered as an editor numbers them."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    first = max(1, line - _CONTEXT_LINES)
    last = min(len(lines), line + _CONTEXT_LINES)
    return [(n, lines[n - 1][:_MAX_LINE]) for n in range(first, last + 1)]


def describe_error(exc: NewsletterError) -> dict[str, object]:
    """The error as data for the page, with the file, line and an excerpt when they are known."""
    where = exc.where
    file: str | None = None
    line: int | None = None
    found = _FILE_LINE.match(where or "")
    if found is not None and Path(found["file"]).is_file():
        file, line = found["file"], int(found["line"])
    elif (frame := _template_frame(exc)) is not None:
        file, line = frame
        where = f"{file}:{line}"
    return {
        "ok": False,
        "error": {
            "what": exc.what,
            "where": where,
            "fix": exc.fix,
            "message": NewsletterError(exc.what, where, exc.fix).message,
            "file": file,
            "line": line,
            "excerpt": _excerpt(Path(file), line) if file and line else [],
        },
    }
