"""One error type for everything a user can cause or fix."""

from __future__ import annotations


class NewsletterError(Exception):
    """A failure the user can act on: what went wrong, where, and how to fix it."""

    def __init__(self, what: str, where: str | None = None, fix: str | None = None) -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """Render as 'what, where, fix' so the CLI can print it on one line."""
        parts = [self.what]
        if self.where:
            parts.append(f"in {self.where}" if not self.where.startswith(("in ", "at ")) else self.where)
        if self.fix:
            parts.append(self.fix)
        return ", ".join(parts)


class ConfigError(NewsletterError):
    """Settings are missing or invalid."""


class SourceError(NewsletterError):
    """A papers file cannot be read or is in no known format."""


class SubscriberError(NewsletterError):
    """A subscriber list cannot be read, validated or written."""


class TemplateError(NewsletterError):
    """A template is missing or does not render."""


class DeliveryError(NewsletterError):
    """The SMTP server itself failed, so the run must stop."""


class StoreError(NewsletterError):
    """The database (SQLite file or PostgreSQL server) cannot be reached, read or written."""

    # The same work may succeed in a moment: the server went away mid-way (a restart, a failover),
    # or PostgreSQL chose this transaction as a deadlock's victim and rolled it back.
    transient: bool = False
    conflict: bool = False  # the deadlock case: tried again at once, without a warning


class LedgerError(NewsletterError):
    """The delivery ledger cannot be opened or is locked by another run."""
