"""Delivery through real aiosmtpd servers on loopback: TLS, AUTH, retries, final refusals, faults."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.lists import store_of
from helpers.smtp_servers import (
    GreetingRefuser,
    LoopbackServer,
    Received,
    RecordingHandler,
    closed_port,
    make_certificate,
    password_checker,
    write_config,
    write_subscribers,
)

from newsletter.delivery import ServerFailure
from newsletter.pipeline.send import SendOptions, SendReport, run_send
from newsletter.settings import load_settings
from newsletter.store.subscribers import StatusWatch


def send(folder: Path, port: int, **smtp: Any) -> SendReport:
    return run_send(load_settings(write_config(folder, port=port, **smtp)), SendOptions())


def ledger_rows(folder: Path) -> dict[str, tuple[str, int, str | None]]:
    with sqlite3.connect(folder / "newsletter.db") as db:
        rows = db.execute("SELECT email, status, attempts, last_reply FROM deliveries").fetchall()
    return {email: (status, attempts, reply) for email, status, attempts, reply in rows}


def test_every_active_subscriber_gets_one_message_over_reused_connections(tmp_path: Path) -> None:
    active = write_subscribers(tmp_path / "subscribers" / "test.csv", 12, unsubscribed=(3,))
    with LoopbackServer() as server:
        report = send(tmp_path, server.port, connections=2, messages_per_connection=4)
    handler = server.handler
    assert sorted(handler.recipients()) == active
    assert report.sent == 11 and report.exit_code == 0
    assert 3 <= handler.connections <= 5  # 11 messages, at most 4 per connection, 2 at a time
    assert {status for status, _, _ in ledger_rows(tmp_path).values()} == {"delivered"}


def test_starttls_and_auth_against_a_server_with_a_self_signed_certificate(tmp_path: Path) -> None:
    cert = make_certificate(tmp_path)
    active = write_subscribers(tmp_path / "subscribers" / "test.csv", 3)
    server = LoopbackServer(
        tls_context=cert.server_context(),
        require_starttls=True,
        auth_require_tls=True,
        authenticator=password_checker("mailer", "s3cret"),
    )
    with server:
        report = send(
            tmp_path,
            server.port,
            security="starttls",
            ca_file=str(cert.cert_path),
            username="mailer",
            password="s3cret",
        )
    assert report.sent == 3
    assert sorted(server.handler.recipients()) == active


def test_implicit_tls_verifies_the_server_against_the_configured_ca(tmp_path: Path) -> None:
    cert = make_certificate(tmp_path)
    write_subscribers(tmp_path / "subscribers" / "test.csv", 2)
    with LoopbackServer(ssl_context=cert.server_context()) as server:
        report = send(tmp_path, server.port, security="tls", ca_file=str(cert.cert_path))
    assert report.sent == 2


def test_wrong_password_stops_the_run_naming_the_server(tmp_path: Path) -> None:
    cert = make_certificate(tmp_path)
    write_subscribers(tmp_path / "subscribers" / "test.csv", 3)
    server = LoopbackServer(
        tls_context=cert.server_context(),
        require_starttls=True,
        authenticator=password_checker("mailer", "s3cret"),
    )
    with server, pytest.raises(ServerFailure) as failure:
        send(
            tmp_path,
            server.port,
            security="starttls",
            ca_file=str(cert.cert_path),
            username="mailer",
            password="wrong",
        )
    assert "rejected the login" in failure.value.message
    assert f"127.0.0.1:{server.port}" in failure.value.message
    assert server.handler.recipients() == []


def test_451_is_retried_then_delivered(tmp_path: Path) -> None:
    write_subscribers(tmp_path / "subscribers" / "test.csv", 4)
    handler = RecordingHandler(plan=lambda rcpt, tries: "451 4.7.1 greylisted" if tries == 1 else None)
    with LoopbackServer(handler) as server:
        report = send(tmp_path, server.port)
    assert report.sent == 4 and report.deferred == 0 and report.exit_code == 0
    assert set(handler.attempts.values()) == {2}
    assert {row[1] for row in ledger_rows(tmp_path).values()} == {2}


def test_persistent_451_is_deferred_with_exit_75_and_the_next_run_resumes(tmp_path: Path) -> None:
    active = write_subscribers(tmp_path / "subscribers" / "test.csv", 4)
    stubborn = active[1]
    handler = RecordingHandler(
        rcpt_plan=lambda rcpt, tries: "451 4.2.2 mailbox busy" if rcpt == stubborn else None
    )
    with LoopbackServer(handler) as server:
        first = send(tmp_path, server.port, max_attempts=3)
    assert (first.sent, first.deferred, first.exit_code) == (3, 1, 75)
    assert handler.rcpt_attempts[stubborn] == 3
    assert ledger_rows(tmp_path)[stubborn][0] == "deferred"
    assert "451 4.2.2 mailbox busy" in (ledger_rows(tmp_path)[stubborn][2] or "")
    with LoopbackServer() as server:
        second = send(tmp_path, server.port)
    assert server.handler.recipients() == [stubborn]
    assert (second.sent, second.skipped, second.exit_code) == (1, 3, 0)


def test_550_is_final_recorded_with_the_reply_and_the_others_continue(tmp_path: Path) -> None:
    active = write_subscribers(tmp_path / "subscribers" / "test.csv", 5)
    gone = active[2]
    handler = RecordingHandler(
        rcpt_plan=lambda rcpt, tries: "550 5.1.1 no such user" if rcpt == gone else None
    )
    with LoopbackServer(handler) as server:
        report = send(tmp_path, server.port)
    assert (report.sent, report.failed, report.exit_code) == (4, 1, 0)
    assert handler.rcpt_attempts[gone] == 1  # never retried
    status, _, reply = ledger_rows(tmp_path)[gone]
    assert status == "failed" and reply == "550 5.1.1 no such user"
    with LoopbackServer() as server:
        again = send(tmp_path, server.port)
    assert server.handler.recipients() == [] and again.skipped == 5


def test_a_dropped_connection_is_retried_on_a_new_one(tmp_path: Path) -> None:
    active = write_subscribers(tmp_path / "subscribers" / "test.csv", 4)
    handler = RecordingHandler(plan=lambda rcpt, tries: "drop" if tries == 1 and rcpt == active[0] else None)
    with LoopbackServer(handler) as server:
        report = send(tmp_path, server.port, connections=1)
    assert report.sent == 4 and report.exit_code == 0
    assert sorted(handler.recipients()) == active
    assert handler.connections >= 2


def test_a_stalled_server_times_out_and_the_message_is_retried(tmp_path: Path) -> None:
    active = write_subscribers(tmp_path / "subscribers" / "test.csv", 3)
    handler = RecordingHandler(
        plan=lambda rcpt, tries: "stall" if tries == 1 and rcpt == active[1] else None, stall_seconds=5
    )
    with LoopbackServer(handler) as server:
        report = send(tmp_path, server.port, timeout=0.3)
    assert report.sent == 3 and report.exit_code == 0
    assert sorted(handler.recipients()) == active
    assert ledger_rows(tmp_path)[active[1]][1] == 2


def test_a_refused_connection_stops_the_run_before_recording_anyone(tmp_path: Path) -> None:
    write_subscribers(tmp_path / "subscribers" / "test.csv", 3)
    port = closed_port()
    with pytest.raises(ServerFailure) as failure:
        send(tmp_path, port)
    assert f"127.0.0.1:{port}" in failure.value.message
    assert "\n" not in failure.value.message
    assert {status for status, _, _ in ledger_rows(tmp_path).values()} == {"queued"}  # none handed over


def test_421_at_greeting_stops_the_run(tmp_path: Path) -> None:
    write_subscribers(tmp_path / "subscribers" / "test.csv", 3)
    with LoopbackServer(factory=GreetingRefuser) as server, pytest.raises(ServerFailure) as failure:
        send(tmp_path, server.port)
    assert "421" in failure.value.message and f"127.0.0.1:{server.port}" in failure.value.message


def test_many_failures_in_a_row_stop_the_run_early(tmp_path: Path) -> None:
    write_subscribers(tmp_path / "subscribers" / "test.csv", 40)
    handler = RecordingHandler(plan=lambda rcpt, tries: "554 5.7.1 rejected by policy")
    with LoopbackServer(handler) as server, pytest.raises(ServerFailure) as failure:
        send(tmp_path, server.port, connections=1, max_failures_in_a_row=5)
    assert "5 deliveries in a row failed" in failure.value.message
    assert len([row for row in ledger_rows(tmp_path).values() if row[0] != "queued"]) < 40


@pytest.mark.parametrize("position", [2, -1], ids=["already-queued", "not-yet-queued"])
def test_an_unsubscribe_during_the_run_is_honoured(tmp_path: Path, position: int) -> None:
    csv_path = tmp_path / "subscribers" / "test.csv"
    active = write_subscribers(csv_path, 30)
    leaver = active[position]
    store = store_of(csv_path)

    def leave_after_the_first_message(item: Received) -> None:
        if len(handler.received) == 1:
            store.unsubscribe(leaver)
            # The send looks at who left at most every StatusWatch.every seconds: the next
            # message goes out after that.
            time.sleep(StatusWatch.every * 3)

    handler = RecordingHandler(on_message=leave_after_the_first_message)
    with LoopbackServer(handler) as server:
        report = send(tmp_path, server.port, connections=1)
    assert leaver not in handler.recipients()
    assert report.unsubscribed == 1 and report.sent == 29 and report.exit_code == 0
    # Never left 'sending' (a re-run would send it) nor 'delivered': recorded as withdrawn, so
    # `newsletter report` can name them.
    assert ledger_rows(tmp_path)[leaver][0] == "withdrawn"


def test_builder_processes_send_the_same_messages_as_the_sender_alone(tmp_path: Path) -> None:
    def bodies(folder: Path, processes: int) -> dict[str, bytes]:
        write_subscribers(folder / "subscribers" / "test.csv", 40, unsubscribed=(7,))
        with LoopbackServer() as server:
            report = send(folder, server.port, compose_processes=processes)
        assert report.sent == 39 and report.composed == 39
        # Everything after the Date header (the clock moves between the two runs; the subject
        # may or may not fold, so the header is found by name, not by line number).
        return {
            item.recipient: item.data.split(b"\r\nDate: ", 1)[1].split(b"\r\n", 1)[1]
            for item in server.handler.received
        }

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert bodies(tmp_path / "a", 0) == bodies(tmp_path / "b", 2)


@pytest.mark.parametrize("processes", [0, 2], ids=["in-process", "builder-processes"])
def test_a_reader_whose_address_no_header_can_carry_is_named_and_the_others_get_the_issue(
    tmp_path: Path, processes: int
) -> None:
    csv_path = tmp_path / "subscribers" / "test.csv"
    active = write_subscribers(csv_path, 40)
    bad = active[7].replace("reader", "r\u00e9ader")  # not ASCII: no To header can carry it
    csv_path.write_text(csv_path.read_text(encoding="utf-8").replace(active[7], bad), encoding="utf-8")
    with LoopbackServer() as server:
        report = send(tmp_path, server.port, compose_processes=processes)
    others = [address for address in active if address != active[7]]
    assert sorted(server.handler.recipients()) == others
    assert (report.sent, report.rejected, report.exit_code) == (39, 1, 0)
    assert [problem.split(": ", 1)[0] for problem in report.problems] == [bad]
    assert "1 rejected (bad address)" in report.summary()


@pytest.mark.parametrize("processes", [0, 2], ids=["in-process", "builder-processes"])
def test_an_error_while_building_a_digest_stops_the_run_with_that_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    processes: int,
) -> None:
    from newsletter.errors import TemplateError
    from newsletter.pipeline.send import DigestPlanner

    original = DigestPlanner.build

    def build(self: DigestPlanner, wanted: Any) -> Any:
        if wanted[0].email.endswith("0030@example.com"):
            raise TemplateError("template 'digest.html' broke", where="templates/digest.html:3")
        return original(self, wanted)

    monkeypatch.setattr(DigestPlanner, "build", build)
    write_subscribers(tmp_path / "subscribers" / "test.csv", 60)
    with LoopbackServer() as server, pytest.raises(TemplateError, match=r"digest\.html"):
        send(tmp_path, server.port, compose_processes=processes)
    assert len(server.handler.received) < 60


def test_a_builder_process_that_dies_stops_the_run_with_a_clear_error_and_the_next_run_resumes(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from newsletter.errors import NewsletterError
    from newsletter.pipeline.send import DigestPlanner

    original = DigestPlanner.build

    def build(self: DigestPlanner, wanted: Any) -> Any:
        if wanted[0].email.endswith("0030@example.com"):
            os._exit(3)  # as if the kernel's OOM killer took it
        return original(self, wanted)

    monkeypatch.setattr(DigestPlanner, "build", build)
    active = write_subscribers(tmp_path / "subscribers" / "test.csv", 60)
    with LoopbackServer() as server:
        with pytest.raises(NewsletterError, match="builder process stopped") as stopped:
            send(tmp_path, server.port, compose_processes=2)
        assert stopped.value.fix is not None and "compose_processes" in stopped.value.fix
        assert len(server.handler.received) < 60
        assert {status for status, _, _ in ledger_rows(tmp_path).values()} <= {
            "queued",
            "sending",
            "delivered",
        }
        monkeypatch.undo()
        send(tmp_path, server.port, compose_processes=2)
    assert sorted(set(server.handler.recipients())) == sorted(active)
