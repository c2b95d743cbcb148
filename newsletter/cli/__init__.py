"""The `newsletter` command line: click groups over the library, one module per group.

`app.py` holds the root group `main`, the context object and `pass_app`; the command modules
import those from it. Commands are registered here by import path and short help, and imported
only when one runs, so `newsletter subscribers add` starts without the renderer, the web server
or the ranking models (tests/test_cli_lazy.py checks this table against the real commands).
The console script is `newsletter.cli:main`.
"""

from __future__ import annotations

from .app import main

# --- commands (one entry per module: name, import path, its docstring's first paragraph) ---
COMMANDS = {
    "archive": (
        "newsletter.cli.archive:archive",
        "Add an issue to the web archive and rebuild its pages, index and Atom feed.",
    ),
    "db": (
        "newsletter.cli.db:db",
        "See, upgrade and copy the database: SQLite by default, PostgreSQL by database_url.",
    ),
    "doctor": (
        "newsletter.cli.doctor:doctor",
        "Check settings, templates, lists, secret, base URL, database, feeds, next issue, DKIM and SMTP.",
    ),
    "papers": (
        "newsletter.cli.papers:papers",
        "Fetch papers from Hugging Face or arXiv, and see how they rank for given keywords.",
    ),
    "preview": (
        "newsletter.cli.preview:preview",
        "Write exactly what one subscriber would get: NAME.html, NAME.txt and NAME.eml.",
    ),
    "report": (
        "newsletter.cli.report:report",
        "Count an issue's outcomes and list every failed, deferred, bounced or unsubscribed address.",
    ),
    "send": (
        "newsletter.cli.send:send",
        "Send this week's digest to every active subscriber who has not had it yet.",
    ),
    "serve": (
        "newsletter.cli.serve:serve",
        "Sign-up, confirm, preferences and unsubscribe pages, and the archive.",
    ),
    "subscribers": (
        "newsletter.cli.subscribers:subscribers",
        "Manage subscriber lists: CSV files under subscribers/, one per list.",
    ),
}
# --- end commands ---

for _name, (_target, _short_help) in COMMANDS.items():
    main.add_lazy_command(_name, _target, _short_help)

__all__ = ["COMMANDS", "main"]
