"""What an issue's messages were built from, kept in the ledger so a past message can be rebuilt.

Papers drop out of the window and templates get edited; the snapshot keeps the issue's papers,
the templates as they were, the sender and the issue's dates (zlib-compressed JSON), and each
delivery row keeps its reader's name, keywords and matched keywords (`reader_record`).
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from ..errors import LedgerError
from ..models import IssueInfo, Subscriber
from ..render.digest import Pick
from ..settings import Settings
from ..sources.paper import Paper

FORMAT = 1
_TEMPLATE_SUFFIXES = frozenset({".html", ".txt", ".css", ".j2", ".jinja"})
_TEMPLATE_MAX_BYTES = 1_000_000


@dataclass(frozen=True)
class IssueSnapshot:
    """An issue as it was sent: its info, sender, papers by id and template sources by name."""

    info: IssueInfo
    sender: dict[str, Any]
    papers: dict[str, Paper]
    templates: dict[str, str]

    @property
    def templates_hash(self) -> str:
        return templates_hash(self.templates)


def templates_hash(templates: dict[str, str]) -> str:
    """A short fingerprint of template sources, to tell whether they changed since."""
    digest = hashlib.sha256()
    for name in sorted(templates):
        digest.update(name.encode() + b"\0" + templates[name].encode() + b"\0")
    return digest.hexdigest()[:16]


def read_templates(dirs: Sequence[Path]) -> dict[str, str]:
    """The top-level templates that would be loaded, the first folder winning like the Jinja loader."""
    found: dict[str, str] = {}
    for folder in dirs:
        for path in sorted(folder.iterdir()) if folder.is_dir() else ():
            wanted = path.suffix in _TEMPLATE_SUFFIXES and path.name not in found
            if wanted and path.is_file() and path.stat().st_size <= _TEMPLATE_MAX_BYTES:
                found[path.name] = path.read_text(encoding="utf-8", errors="replace")
    return found


def make_snapshot(
    settings: Settings, info: IssueInfo, papers: Sequence[Paper], dirs: Sequence[Path], earlier: bytes | None
) -> bytes:
    """The snapshot to record; papers of an earlier run of the same issue are kept (a resume may
    load a different window), templates are today's."""
    kept: dict[str, Any] = {}
    if earlier is not None:
        kept = {p["id"]: p for p in _decode(earlier).get("papers", [])}
    kept.update({p.id: p.model_dump(mode="json") for p in papers})
    data = {
        "format": FORMAT,
        "issue": {
            "issue_id": info.issue_id,
            "issue_date": info.issue_date.isoformat(),
            "list_name": info.list_name,
            "title": info.title,
            "window_start": info.window_start.isoformat(),
            "archive_url": info.archive_url,
        },
        "sender": settings.sender.model_dump(mode="json"),
        "papers": list(kept.values()),
        "templates": read_templates(dirs),
    }
    return zlib.compress(json.dumps(data, separators=(",", ":")).encode("utf-8"), 6)


def _decode(blob: bytes) -> dict[str, Any]:
    try:
        data = json.loads(zlib.decompress(blob))
    except (zlib.error, ValueError) as exc:
        raise LedgerError(
            f"the recorded issue snapshot cannot be read ({exc})",
            fix="the ledger may be damaged; restore it from a backup",
        ) from exc
    if not isinstance(data, dict):
        raise LedgerError("the recorded issue snapshot is not an object", fix="restore the ledger")
    return data


def load_snapshot(blob: bytes) -> IssueSnapshot:
    """Read a recorded snapshot back."""
    data = _decode(blob)
    issue = data["issue"]
    info = IssueInfo(
        issue_id=issue["issue_id"],
        issue_date=date.fromisoformat(issue["issue_date"]),
        list_name=issue["list_name"],
        title=issue["title"],
        window_start=date.fromisoformat(issue["window_start"]),
        archive_url=issue.get("archive_url"),
    )
    papers = {p["id"]: Paper.model_validate(p) for p in data.get("papers", [])}
    return IssueSnapshot(info, data.get("sender", {}), papers, data.get("templates", {}))


def reader_record(
    subscriber: Subscriber, picks: Sequence[Pick], quoted: Mapping[str, str] | None = None
) -> str:
    """The per-delivery part: who the reader was then, which keywords each paper matched, the
    feedback weights that shaped each card's 'why' line, and the sentences quoted by meaning."""
    matched = {p.paper.id: list(p.matched) for p in picks if p.matched}
    weights = {
        p.paper.id: [float(getattr(p, "liked", 0.0)), float(getattr(p, "feedback", 0.0))] for p in picks
    }
    taste = {paper: pair for paper, pair in weights.items() if any(pair)}
    record: dict[str, Any] = {"name": subscriber.name, "keywords": subscriber.keywords, "matched": matched}
    related = {p.paper.id: found for p in picks if (found := list(getattr(p, "related", ()) or ()))}
    if related:  # keywords matched by meaning only, so a replay says "close in meaning" as sent
        record["related"] = related
    if taste:
        record["taste"] = taste
    if quoted:  # chosen by the model, which a replay may lack or have in another version: kept as sent
        record["quoted"] = dict(quoted)
    filler = [p.paper.id for p in picks if getattr(p, "filler", False)]
    if filler:  # the week's popular papers filling the digest, shown again under their own heading
        record["filler"] = filler
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)
