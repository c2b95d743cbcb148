"""Read our own JSON Lines: one Paper-shaped object per line, as `papers fetch` writes them."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from .common import BadRecord, ReadResult, arxiv_id, parse_datetime, require_text
from .paper import Paper, stable_id


def read_jsonl(text: str) -> ReadResult:
    """Parse every non-blank line; a bad line is noted by its line number and skipped."""
    result = ReadResult()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            result.papers.append(jsonl_record_to_paper(_load_line(line)))
        except BadRecord as exc:
            result.problems.append((str(number), str(exc)))
    return result


def _load_line(line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise BadRecord(f"not valid JSON ({exc.msg})") from exc
    except RecursionError:
        raise BadRecord("JSON nested too deeply") from None


def jsonl_record_to_paper(record: Any) -> Paper:
    """Validate one line against Paper, filling an id and URL where they can be derived."""
    if not isinstance(record, dict):
        raise BadRecord("line is not a JSON object")
    if isinstance(record.get("paper"), dict) or ("summary" in record and "abstract" not in record):
        from .hf import hf_record_to_paper

        return hf_record_to_paper(record)  # daily_papers records saved one per line
    data = dict(record)
    data["title"] = require_text(data.get("title"), "title")
    data["abstract"] = require_text(data.get("abstract"), "abstract")
    data["published"] = parse_datetime(data.get("published"))
    found = arxiv_id(str(data.get("id") or "")) or arxiv_id(str(data.get("url") or ""))
    data["id"] = found or str(data.get("id") or "") or stable_id(str(data.get("url") or data["title"]))
    if not data.get("url"):
        if not found:
            raise BadRecord("missing url")
        data["url"] = f"https://arxiv.org/abs/{found}"
    data.setdefault("source", "jsonl")
    try:
        return Paper.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise BadRecord(f"{field}: {first['msg']}") from exc


def paper_to_jsonl(paper: Paper) -> str:
    """One line per paper, so files can be appended to and read back by read_jsonl."""
    return paper.model_dump_json()
