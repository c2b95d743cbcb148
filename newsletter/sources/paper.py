"""A paper as every source yields it, normalised so later stages never care where it came from."""

from __future__ import annotations

import hashlib
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..text import strip_forbidden_chars


class Paper(BaseModel):
    """One paper from any source, normalised so stages never care where it came from."""

    model_config = ConfigDict(frozen=True)

    id: str
    title: str
    abstract: str
    authors: list[str] = Field(default_factory=list)
    published: datetime
    featured_at: datetime | None = None
    url: str
    pdf_url: str | None = None
    code_url: str | None = None
    upvotes: int | None = None
    keywords: list[str] = Field(default_factory=list)
    source: str = "unknown"

    @field_validator("id", "title", "abstract", "url", "pdf_url", "code_url", "source")
    @classmethod
    def _markup_safe_text(cls, value: str | None) -> str | None:
        # A source's JSON can hold a lone surrogate (UTF-8 cannot even write it) or a control byte.
        return strip_forbidden_chars(value) if value is not None else None

    @field_validator("authors", "keywords")
    @classmethod
    def _markup_safe_list(cls, value: list[str]) -> list[str]:
        return [strip_forbidden_chars(item) for item in value]

    @field_validator("published", "featured_at")
    @classmethod
    def _must_be_aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("dates must carry a timezone")
        return value

    @property
    def listed_at(self) -> datetime:
        """When the paper reached readers: featured on a daily list if it was, else published."""
        return self.featured_at or self.published


def stable_id(text: str) -> str:
    """Give papers without an arXiv id an id that is the same on every run."""
    return "h-" + hashlib.sha256(text.strip().lower().encode("utf-8")).hexdigest()[:16]
