"""The `newsletter` command line: click groups over the library, one module per group.

`app.py` holds the root group `main`, the context object and `pass_app`; the command modules
import those from it, and only this file imports the command modules, to attach them, so no
module of the CLI imports another in a circle. The console script is `newsletter.cli:main`.
"""

from __future__ import annotations

from .app import main

# --- commands (one import and one entry per module) ---
from .archive import archive
from .doctor import doctor
from .papers import papers
from .preview import preview
from .report import report
from .send import send
from .serve import serve
from .subscribers import subscribers

for _command in (send, preview, papers, subscribers, serve, report, archive, doctor):
    main.add_command(_command)
# --- end commands ---

__all__ = ["main"]
