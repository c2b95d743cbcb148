"""flufl.bounce's 117 real messages (AOL, Exim, Postfix, qmail, Yahoo, Exchange, GroupWise, ...)
as they would reach us: each delivered to the signed VERP return path of a real delivery of ours,
body unchanged, and read by one `newsletter subscribers bounces --maildir` run."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from helpers.bounces import bounce_run, send, statuses
from helpers.deliveries import database
from helpers.smtp_servers import write_subscribers

from newsletter.store.bouncelog import events_of_issue
from newsletter.store.history import latest_issue

CORPUS = Path(__file__).parent / "fixtures" / "bounces" / "flufl"


def labels() -> list[dict[str, str]]:
    with (CORPUS / "labels.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def as_delivered(sample: bytes, return_path: str) -> bytes:
    """The sample as final delivery files it: its mbox From_ line dropped, Delivered-To on top."""
    if sample.startswith(b"From "):
        sample = sample.split(b"\n", 1)[1]
    return f"Return-Path: <>\nDelivered-To: {return_path}\n".encode() + sample


def test_the_flufl_bounce_corpus_is_read_for_the_right_reader_with_the_right_severity(tmp_path: Path) -> None:
    samples = labels()
    readers = write_subscribers(tmp_path / "subscribers" / "test.csv", len(samples))
    return_paths = {
        i.recipient: i.mail_from for i in send(tmp_path, {"bounce_address": "bounces@example.org"}).received
    }
    delivered = [
        as_delivered((CORPUS / s["file"]).read_bytes(), return_paths[r])
        for s, r in zip(samples, readers, strict=True)
    ]
    out, _ = bounce_run(tmp_path, delivered)

    db = database(f"sqlite:///{tmp_path / 'newsletter.db'}")
    kinds: dict[str, set[str]] = {}
    for event in events_of_issue(db, latest_issue(db, "test", "smtp") or "", "test", "smtp"):
        kinds.setdefault(event.email, set()).add(event.kind)
    label = {r: s["label"] for s, r in zip(samples, readers, strict=True)}
    bounces = [r for r in readers if label[r] in ("permanent", "temporary")]
    recognised = [r for r in bounces if kinds.get(r)]
    agreeing = [r for r in recognised if ("hard" in kinds[r]) == (label[r] == "permanent")]
    files = dict(zip(readers, (s["file"] for s in samples), strict=True))
    print(
        f"\ncorpus: {len(recognised)}/{len(bounces)} recognised for the right reader, "
        f"{len(agreeing)}/{len(bounces)} hard/soft as labelled\n"
        + "".join(
            f"  {files[r]}: {label[r]}, read as {sorted(kinds.get(r, []))}\n"
            for r in bounces
            if r not in agreeing
        )
        + out.splitlines()[-1]
    )
    assert len(recognised) >= 0.95 * len(bounces)
    assert len(agreeing) >= 0.90 * len(bounces)
    state = statuses(tmp_path)
    assert [state[r] for r in readers if label[r] == "not-a-bounce"] == ["active", "active"]
    assert all(label[r] in ("permanent", "no-recipient") for r in readers if state[r] == "bounced")
    counted = re.match(
        r"(\d+) messages: (\d+) hard, (\d+) soft .*?\), (\d+) complaints, (\d+) auto-replies, "
        r"(\d+) not ours, (\d+) not understood;",
        out.splitlines()[-1],
    )
    assert counted is not None
    total, *categories = map(int, counted.groups())
    assert total == len(samples) == sum(categories)  # every message in exactly one category
