"""A message framed for SMTP DATA once, where it is built, so the sending loop only writes bytes."""

from __future__ import annotations

import re

_LINE_END = re.compile(rb"\r\n|\r|\n")
END_OF_DATA = b".\r\n"


def to_wire(message: bytes) -> bytes:
    """CRLF line ends, leading dots doubled and the final CRLF.CRLF (RFC 5321 4.5.2).

    The checks are plain byte counts and searches, so a message that is already
    CRLF-clean (every one we compose) is never rewritten by the two regex passes.
    """
    newlines = message.count(b"\n")
    if newlines != message.count(b"\r\n") or newlines != message.count(b"\r"):
        message = _LINE_END.sub(b"\r\n", message)
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    if b"\n." in message:
        message = message.replace(b"\r\n.", b"\r\n..")
    if message.startswith(b"."):
        message = b"." + message
    return message + END_OF_DATA


def from_wire(wire: bytes) -> bytes:
    """The message as the receiving server stores it: the inverse of to_wire for CRLF messages."""
    if not wire.endswith(b"\r\n" + END_OF_DATA) and wire != END_OF_DATA:
        raise ValueError("not a DATA payload: it must end with CRLF.CRLF")
    message = wire[: -len(END_OF_DATA)]
    if message.startswith(b".."):
        message = message[1:]
    return message.replace(b"\r\n..", b"\r\n.")


def stuffed_dots(wire: bytes) -> int:
    """How many dots to_wire added; SIZE (RFC 1870) counts the message without them."""
    return wire.count(b"\r\n..") + wire.startswith(b"..")
