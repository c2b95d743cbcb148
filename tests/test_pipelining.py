"""SMTP pipelining (RFC 2920): MAIL, RCPT and DATA in one round trip, with every old guarantee kept."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from helpers.smtp_servers import (
    DataRefusingSMTP,
    GroupAnswerer,
    LoopbackServer,
    RecordingHandler,
    write_config,
)

from newsletter.delivery.smtp import ServerFailure, SmtpTarget, close_connection, open_connection, send_one
from newsletter.mail.compose import ComposedMessage, MessageComposer
from newsletter.models import IssueInfo, Subscriber
from newsletter.render.digest import RenderedDigest
from newsletter.settings import load_settings
from newsletter.statuses import ReplyClass

DELIVERED, FAILED, TEMPORARY = ReplyClass.ACCEPTED, ReplyClass.PERMANENT, ReplyClass.TRANSIENT
ISSUE = IssueInfo("2024-W11", date(2024, 3, 14), "test", "Test Digest", date(2024, 3, 8))
GOOD = b"250 2.1.0 ok\r\n"
GO_ON = b"354 go on\r\n"


def composed(folder: Path, email: str) -> ComposedMessage:
    composer = MessageComposer(load_settings(write_config(folder)), ISSUE, "secret")
    digest = RenderedDigest(subject="Digest", html="<p>Hello</p>", text="Hello\n.\n")
    return composer.compose(Subscriber(email=email, name="Ada"), digest, "https://x.example/u")


def messages(folder: Path, *names: str) -> list[ComposedMessage]:
    return [composed(folder, f"{name}@example.org") for name in names]


def deliver(server: LoopbackServer, batch: list[ComposedMessage], pipelining: bool = True) -> list[str]:
    """Each message's outcome, all over one connection, as `send` hands them to send_one."""

    async def run() -> list[str]:
        client = await open_connection(SmtpTarget(server.host, server.port, timeout=1.0))
        try:
            outcomes = []
            for message in batch:
                reply = await send_one(client, "digest@example.org", message, "here:25", pipelining)
                outcomes.append(f"{reply.kind} {reply.code}")
            return outcomes
        finally:
            await close_connection(client)

    return asyncio.run(run())


def group_server(answer: Callable[[int], bytes]) -> tuple[LoopbackServer, list[bytes], list[bytes]]:
    """A GroupAnswerer on loopback, the messages it stored and every byte it heard."""
    stored: list[bytes] = []
    heard: list[bytes] = []
    return LoopbackServer(factory=lambda: GroupAnswerer(answer, stored, heard)), stored, heard


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one by one"])
def test_a_refused_recipient_is_final_and_the_next_reader_is_delivered_on_the_same_connection(
    tmp_path: Path, pipelining: bool
) -> None:
    handler = RecordingHandler(
        rcpt_plan=lambda address, tries: "550 5.1.1 no such user" if "gone" in address else None,
        pipelining=pipelining,
    )
    with LoopbackServer(handler) as server:
        outcomes = deliver(server, messages(tmp_path, "gone", "ada"))
    assert outcomes == [f"{FAILED} 550", f"{DELIVERED} 250"]
    assert handler.recipients() == ["ada@example.org"] and handler.connections == 1


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one by one"])
def test_a_refused_354_is_retried_later_and_the_next_reader_is_delivered_on_the_same_connection(
    tmp_path: Path, pipelining: bool
) -> None:
    handler = RecordingHandler(pipelining=pipelining)
    refusals = iter([True])  # the first DATA only
    with LoopbackServer(
        factory=lambda: DataRefusingSMTP(
            handler, "452 4.3.1 out of storage", lambda: next(refusals, False), hostname="test.local"
        )
    ) as server:
        outcomes = deliver(server, messages(tmp_path, "bob", "ada"))
    assert outcomes == [f"{TEMPORARY} 452", f"{DELIVERED} 250"]
    assert handler.recipients() == ["ada@example.org"]


def test_replies_that_arrive_together_are_all_read(tmp_path: Path) -> None:
    """The server answers the group in one write only once all of it came: one round trip."""
    server, stored, _ = group_server(lambda n: GOOD + GOOD + GO_ON)
    batch = messages(tmp_path, "ada", "bob")
    with server:
        assert deliver(server, batch) == [f"{DELIVERED} 250", f"{DELIVERED} 250"]
    assert stored == [m.wire[: -len(b".\r\n")] for m in batch]


def test_a_354_after_a_refused_recipient_gets_an_empty_message_never_the_digest(tmp_path: Path) -> None:
    """RFC 2920 3.1: a server may accept DATA though no recipient was; the client ends it empty."""
    server, stored, _ = group_server(
        lambda n: GOOD + b"550 5.1.1 no such user\r\n" + GO_ON if n == 1 else GOOD * 2 + GO_ON
    )
    with server:
        outcomes = deliver(server, messages(tmp_path, "gone", "ada"))
    assert outcomes == [f"{FAILED} 550", f"{DELIVERED} 250"]
    assert stored[0] == b"" and b"ada@example.org" in stored[1]


@pytest.mark.parametrize(
    "answer",
    [GO_ON + GOOD + GOOD, GOOD + GO_ON + GO_ON, GOOD + GOOD + GOOD, GOOD + GOOD + GO_ON + GOOD],
    ids=["354 to MAIL", "354 to RCPT", "250 to DATA", "a reply too many"],
)
def test_replies_out_of_step_with_the_commands_stop_the_run_in_one_line(
    tmp_path: Path, answer: bytes
) -> None:
    server, stored, heard = group_server(lambda n: answer)
    with server, pytest.raises(ServerFailure) as failure:
        deliver(server, messages(tmp_path, "ada"))
    assert "do not match the commands sent" in failure.value.message
    assert failure.value.where == "here:25" and "smtp.pipelining = false" in (failure.value.fix or "")
    assert stored == [] and b"Subject:" not in b"".join(
        heard
    )  # nothing of it went to a server that lost track


def test_a_server_that_offers_pipelining_but_answers_only_mail_times_out_and_pipelining_false_is_the_way_out(
    tmp_path: Path,
) -> None:
    liar, stored, heard = group_server(lambda n: GOOD)  # drops RCPT and DATA, as if they never came
    with liar:
        assert deliver(liar, messages(tmp_path, "ada")) == [f"{TEMPORARY} 0"]
    assert stored == [] and b"Subject:" not in b"".join(heard)

    class OneByOne(GroupAnswerer):
        """The same server, which does answer commands sent one at a time."""

        def data_received(self, chunk: bytes) -> None:
            for line in chunk.splitlines(keepends=True) if not self._in_data else [chunk]:
                if line[:4].upper() in (b"MAIL", b"RCPT"):
                    self.transport.write(GOOD)
                elif line[:4].upper() == b"DATA":
                    self._in_data = True
                    self.transport.write(GO_ON)
                else:
                    super().data_received(line)

    kept: list[bytes] = []
    with LoopbackServer(factory=lambda: OneByOne(lambda n: GOOD, kept, [])) as server:
        assert deliver(server, messages(tmp_path, "ada"), pipelining=False) == [f"{DELIVERED} 250"]
    assert len(kept) == 1


@pytest.mark.parametrize(
    "answer",
    [b"250-" + b"x" * 100 + b"\r\n", b"250 " + b"x" * 300],
    ids=["endless continuation lines", "an endless line"],
)
def test_a_reply_that_never_ends_is_cut_off_not_buffered_forever(tmp_path: Path, answer: bytes) -> None:
    server, _, heard = group_server(lambda n: answer * 200)  # 20 KB and more of one reply
    with server:
        outcomes = deliver(server, messages(tmp_path, "ada"))
    assert outcomes == [f"{TEMPORARY} -1"] and b"Subject:" not in b"".join(heard)
