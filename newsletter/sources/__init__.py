"""Reading papers from Hugging Face daily_papers JSON, arXiv feeds and our JSON Lines."""

from __future__ import annotations

from .loader import (
    PaperLoad,
    find_paper_files,
    load_papers,
    parse_papers_text,
    read_paper_file,
)

__all__ = ["PaperLoad", "find_paper_files", "load_papers", "parse_papers_text", "read_paper_file"]
