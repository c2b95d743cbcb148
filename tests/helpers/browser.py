"""Where Debian's headless Chromium and its WebDriver are, and the marks every browser test carries."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def _found(name: str) -> str | None:
    """The program on PATH, else Debian's place for it, else None."""
    path = shutil.which(name) or f"/usr/bin/{name}"
    return path if Path(path).exists() else None


CHROMIUM = _found("chromium")
CHROMEDRIVER = _found("chromedriver")

# `pytest -m browser` runs these suites on their own (.ci/run does); without the programs they skip
# with the reason, never fail.
needs_chromium = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium; .ci/run installs it"),
]
needs_chromedriver = [
    *needs_chromium,
    pytest.mark.skipif(CHROMEDRIVER is None, reason="needs Debian's chromium-driver; .ci/run installs it"),
]
