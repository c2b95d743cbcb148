"""Put pip into a venv made --without-pip: download the newest pip wheel and let it install itself.

Debian's and Ubuntu's python3 lacks ensurepip unless python3-venv is installed; this is what
`install.sh` falls back to. It honours PIP_INDEX_URL (a simple index) and otherwise asks PyPI.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

PYPI_JSON = "https://pypi.org/pypi/pip/json"


def wheel_url() -> str:
    """The newest pip wheel, from the configured simple index or PyPI's JSON API."""
    index = os.environ.get("PIP_INDEX_URL")
    if index:
        with urllib.request.urlopen(index.rstrip("/") + "/pip/", timeout=60) as answer:
            page = answer.read().decode("utf-8", "replace")
        links: list[str] = re.findall(r'href="([^"]*pip-[\d.]+-py3-none-any\.whl[^"]*)"', page)
        if not links:
            raise SystemExit(f"no pip wheel listed at {index}/pip/")
        return urllib.parse.urljoin(index.rstrip("/") + "/pip/", links[-1])
    with urllib.request.urlopen(PYPI_JSON, timeout=60) as answer:
        files: list[dict[str, str]] = json.load(answer)["urls"]
    return urllib.parse.urljoin(PYPI_JSON, next(f["url"] for f in files if f["filename"].endswith(".whl")))


def main() -> None:
    url = wheel_url()
    with tempfile.TemporaryDirectory() as folder:
        wheel = Path(folder) / url.split("/")[-1].split("#")[0]
        with urllib.request.urlopen(url, timeout=120) as answer:
            wheel.write_bytes(answer.read())
        # A pip wheel runs from the zip itself: pip installs pip.
        subprocess.run([sys.executable, f"{wheel}/pip", "install", "-q", str(wheel)], check=True)


if __name__ == "__main__":
    main()
