"""Delivery status reports (RFC 3464) as a remote server, or a forger, would write them."""

from __future__ import annotations

import email
from email.message import Message


def dsn(
    recipient: str,
    *,
    returned_id: str | None = None,
    to: str = "digest@example.org",
    headers: tuple[tuple[str, str], ...] = (),
    extra_recipients: tuple[str, ...] = (),
    original: str | None = None,
    status: str = "5.1.1",
    action: str = "failed",
) -> Message:
    """A 5.1.1 report for `recipient` sent to `to`, about the message `returned_id` (None: the
    report quotes nothing of it, as Exchange and some Postfix setups do); `headers` go on top,
    as the receiving server adds them (Delivered-To, X-Original-To); `original` is written as
    every block's Original-Recipient; `status` is every block's Status, `action` its Action."""
    returned = (
        f"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {returned_id}\r\n\r\n"
        if returned_id
        else ""
    )
    first = f"Original-Recipient: rfc822; {original}\r\n" if original else ""
    blocks = "".join(
        f"{first}Final-Recipient: rfc822; {address}\r\nAction: {action}\r\nStatus: {status}\r\n\r\n"
        for address in (recipient, *extra_recipients)
    )
    top = "".join(f"{name}: {value}\r\n" for name, value in headers)
    text = (
        f"{top}From: MAILER-DAEMON@mx.example.net\r\nTo: {to}\r\nSubject: failure\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
        f"{blocks}{returned}--b--\r\n"
    )
    return email.message_from_string(text)


def raw_dsn(status_part: str, *, returned_id: str, returned_type: str = "text/rfc822-headers") -> Message:
    """A report whose delivery-status part is exactly `status_part` (its blocks as a remote server
    wrote them, odd spacing and all), returning the headers of `returned_id` as `returned_type`."""
    text = (
        "From: MAILER-DAEMON@mx.example.net\r\nTo: digest@example.org\r\nSubject: failure\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        f"--b\r\nContent-Type: message/delivery-status\r\n\r\n{status_part}\r\n"
        f"--b\r\nContent-Type: {returned_type}\r\n\r\nMessage-ID: {returned_id}\r\n\r\n--b--\r\n"
    )
    return email.message_from_string(text)


def arf(
    returned: bytes, *, to: str = "abuse-reports@example.org", reporter: str = "mx.mailbox.example"
) -> Message:
    """A spam complaint in the feedback-loop format (RFC 5965) as a mailbox provider sends it,
    returning the message the reader marked as spam (`returned`, as received)."""
    head = returned.split(b"\r\n\r\n", 1)[0].decode("ascii", "replace")
    text = (
        f"From: fbl@{reporter}\r\nTo: {to}\r\nSubject: complaint about message\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="f"\r\n\r\n'
        "--f\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n"
        "--f\r\nContent-Type: message/feedback-report\r\n\r\n"
        f"Feedback-Type: abuse\r\nUser-Agent: {reporter}-fbl/1.0\r\nVersion: 1\r\n\r\n"
        f"--f\r\nContent-Type: text/rfc822-headers\r\n\r\n{head}\r\n\r\n--f--\r\n"
    )
    return email.message_from_string(text)
