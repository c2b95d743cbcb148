"""Find paper files, detect each one's format from its content, and merge them into one list."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SourceError
from .arxiv import feed_kind, read_arxiv
from .common import BadRecord, ReadResult
from .dedupe import dedupe_papers
from .hf import looks_like_hf, read_hf
from .jsonl import jsonl_record_to_paper, read_jsonl
from .paper import Paper

SUFFIXES = (".json", ".jsonl", ".xml", ".atom", ".rss")
FORMATS_HINT = "expected Hugging Face daily_papers JSON, arXiv Atom/RSS, or JSON Lines of papers"


@dataclass
class PaperLoad:
    """Papers from every file (deduplicated, newest first) and the records that were skipped."""

    papers: list[Paper] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def load_papers(paths: Iterable[Path]) -> PaperLoad:
    """Read files and folders in any mix of formats; raise only when nothing usable is found."""
    files = find_paper_files(paths)
    papers: list[Paper] = []
    problems: list[str] = []
    for path in files:
        result = read_paper_file(path)
        papers.extend(result.papers)
        problems.extend(f"{path}:{position}: {reason}" for position, reason in result.problems)
    if not papers:
        skipped = f" ({len(problems)} record(s) skipped, the first at {problems[0]})" if problems else ""
        raise SourceError(
            f"no papers found{skipped}",
            where=", ".join(str(f) for f in files),
            fix="check the files hold paper records or fetch some with 'newsletter papers fetch'",
        )
    return PaperLoad(papers=dedupe_papers(papers), problems=problems)


def find_paper_files(paths: Iterable[Path]) -> list[Path]:
    """Expand folders (recursively, by suffix) so users can point at a whole archive."""
    given = [Path(p) for p in paths]
    if not given:
        raise SourceError(
            "no papers given", fix="pass --papers FILE_OR_FOLDER or set 'papers' in newsletter.toml"
        )
    files: list[Path] = []
    for path in given:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES))
        elif path.is_file():
            files.append(path)
        else:
            raise SourceError(
                f"papers path {path} does not exist", fix="check the --papers path or the 'papers' setting"
            )
    if not files:
        raise SourceError(
            "no paper files found",
            where=", ".join(map(str, given)),
            fix=f"put {', '.join(SUFFIXES)} files there or fetch some with 'newsletter papers fetch'",
        )
    return files


def read_paper_file(path: Path) -> ReadResult:
    """Read one file whatever its suffix says: the content decides the format."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _unknown(path, "it is not UTF-8 text") from exc
    except OSError as exc:
        raise SourceError(f"cannot read {path} ({exc.strerror})", fix="check the file's permissions") from exc
    return parse_papers_text(text, str(path))


def parse_papers_text(text: str, name: str) -> ReadResult:
    """Detect the format from the first character and the structure, then read it."""
    head = text.lstrip()
    if head.startswith("<"):
        return _read_xml(text, name)
    if head.startswith(("[", "{")):
        return _read_json(text, name)
    if not head:
        raise _unknown(name, "it is empty")
    raise _unknown(name, "it does not start with JSON or XML")


def _read_xml(text: str, name: str) -> ReadResult:
    try:
        root = ET.fromstring(text.encode("utf-8"))
    except ET.ParseError as exc:
        raise _unknown(name, f"it is not well-formed XML ({exc})") from exc
    if feed_kind(root) is None:
        raise _unknown(name, f"its XML root <{root.tag}> is not an Atom or RSS feed")
    return read_arxiv(root)


def _read_json(text: str, name: str) -> ReadResult:
    try:
        data: Any = json.loads(text)
    except RecursionError:
        raise _unknown(name, "its JSON is nested too deeply to be paper records") from None
    except json.JSONDecodeError:
        if text.lstrip().startswith("{"):
            return read_jsonl(text)
        raise _unknown(name, "it is not valid JSON") from None
    if looks_like_hf(data):
        return read_hf(data)
    if isinstance(data, dict) and "abstract" in data:
        return _read_paper_list([data])
    if isinstance(data, list) and all(isinstance(r, dict) and "abstract" in r for r in data):
        return _read_paper_list(data)
    raise _unknown(name, "its JSON records are neither daily_papers records nor papers")


def _read_paper_list(data: list[dict[str, Any]]) -> ReadResult:
    """A JSON array of Paper-shaped objects, as someone might export from a notebook."""
    result = ReadResult()
    for position, record in enumerate(data, start=1):
        try:
            result.papers.append(jsonl_record_to_paper(record))
        except BadRecord as exc:
            result.problems.append((str(position), str(exc)))
    return result


def _unknown(path: Path | str, why: str) -> SourceError:
    return SourceError(f"{path} is in no known papers format: {why}", fix=FORMATS_HINT)
