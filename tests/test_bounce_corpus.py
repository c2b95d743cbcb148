"""flufl.bounce's 117 real messages (AOL, Exim, Postfix, qmail, Yahoo, Exchange, GroupWise, ...)
as they would reach us: each delivered to the signed VERP return path of a real delivery of ours,
body unchanged, and read by one `newsletter subscribers bounces --maildir` run."""

from __future__ import annotations

import csv
import mailbox
import re
from pathlib import Path

from click.testing import CliRunner
from helpers.deliveries import database
from helpers.lists import store_of
from helpers.smtp_servers import LoopbackServer, RecordingHandler, write_config, write_subscribers

from newsletter.cli import main
from newsletter.pipeline.send import SendOptions, run_send
from newsletter.settings import load_settings
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
    with LoopbackServer() as server:
        settings = load_settings(
            write_config(tmp_path, port=server.port, sender={"bounce_address": "bounces@example.org"})
        )
        assert run_send(settings, SendOptions()).exit_code == 0
    assert isinstance(server.handler, RecordingHandler)
    return_paths = {item.recipient: item.mail_from for item in server.handler.received}
    box = mailbox.Maildir(tmp_path / "Bounces", create=True)
    for sample, reader in zip(samples, readers, strict=True):
        box.add(as_delivered((CORPUS / sample["file"]).read_bytes(), return_paths[reader]))

    result = CliRunner().invoke(
        main,
        [
            "--config",
            str(tmp_path / "newsletter.toml"),
            "subscribers",
            "bounces",
            "--maildir",
            str(tmp_path / "Bounces"),
        ],
    )
    assert result.exit_code == 0, result.output

    db = database(f"sqlite:///{tmp_path / 'newsletter.db'}")
    issue = latest_issue(db, "test", "smtp")
    assert issue is not None
    kinds: dict[str, set[str]] = {}
    for event in events_of_issue(db, issue, "test", "smtp"):
        kinds.setdefault(event.email, set()).add(event.kind)
    statuses = {s.email: str(s.status) for s in store_of(tmp_path / "subscribers" / "test.csv").read()}
    bounces = [
        (s, r) for s, r in zip(samples, readers, strict=True) if s["label"] in ("permanent", "temporary")
    ]
    recognised = [(s, r) for s, r in bounces if kinds.get(r)]
    agreeing = [(s, r) for s, r in recognised if _hard(kinds[r]) == (s["label"] == "permanent")]
    permanence = [(s, r) for s, r in recognised if _lasting(kinds[r]) == (s["label"] == "permanent")]
    by_label = {
        label: {r for s, r in zip(samples, readers, strict=True) if s["label"] == label} for label in LABELS
    }
    print(
        f"\ncorpus: {len(recognised)}/{len(bounces)} recognised for the right reader, "
        f"{len(agreeing)}/{len(recognised)} hard/soft as labelled "
        f"({len(permanence)}/{len(recognised)} counting 5.7.x policy blocks as permanent)\n"
        + "\n".join(
            f"  {s['file']}: labelled {s['label']}, read {sorted(kinds.get(r, []))}"
            for s, r in bounces
            if (s, r) not in agreeing
        )
        + "\n"
        + result.stdout.splitlines()[-1]
    )
    assert len(recognised) >= 0.95 * len(bounces)
    assert len(agreeing) >= 0.90 * len(recognised)
    assert not {r for r in by_label["not-a-bounce"] if statuses[r] != "active" or "hard" in kinds.get(r, ())}
    marked = {r for r, status in statuses.items() if status == "bounced"}
    assert marked <= by_label["permanent"] | by_label["no-recipient"]  # nobody marked from a warning
    counted = re.match(
        r"(\d+) messages: (\d+) hard, (\d+) soft .*?\), (\d+) complaints, (\d+) auto-replies, "
        r"(\d+) not ours, (\d+) not understood;",
        result.stdout.splitlines()[-1],
    )
    assert counted is not None
    total, *categories = map(int, counted.groups())
    assert total == len(samples) == sum(categories)  # every message in exactly one category


LABELS = ("permanent", "temporary", "not-a-bounce", "no-recipient")


def _hard(kinds: set[str]) -> bool:
    return "hard" in kinds


def _lasting(kinds: set[str]) -> bool:
    return bool(kinds & {"hard", "policy"})
