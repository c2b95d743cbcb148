"""The `newsletter` command line: click groups over the library, one module per group."""

from __future__ import annotations

from .app import main

__all__ = ["main"]
