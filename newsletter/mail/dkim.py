"""Optional DKIM signing (dkimpy) of the exact bytes handed to the SMTP server."""

from __future__ import annotations

from pathlib import Path

import dkim

from ..errors import ConfigError
from ..settings import DkimSettings

# The list headers must be signed: RFC 8058 one-click unsubscribe is only trusted when they are.
REQUIRED_HEADERS = ("From", "List-Unsubscribe", "List-Unsubscribe-Post")


class DkimSigner:
    """Signs every message of a run with one key, parsed and checked once."""

    def __init__(self, selector: str, domain: str, private_key: bytes, headers: list[str]) -> None:
        self.selector = selector.encode("ascii")
        self.domain = domain.encode("ascii")
        self.private_key = private_key
        wanted = list(dict.fromkeys(name.lower() for name in [*headers, *REQUIRED_HEADERS]))
        # From twice (oversigning, RFC 6376 8.15): the signature also covers the absence of a
        # second From, so nobody can add one that a mail client would show instead of ours.
        self.headers = [name.encode("ascii") for name in [*wanted, "from"]]

    @classmethod
    def from_settings(cls, settings: DkimSettings, resolve: Path | None = None) -> DkimSigner | None:
        """None when DKIM is not configured; a ConfigError naming the key file when it is broken."""
        if not settings.enabled:
            return None
        assert settings.selector and settings.domain
        selector = _ascii_setting(settings.selector, "dkim.selector", "a DNS label such as 'digest2026'")
        domain = _domain(settings.domain)
        for name in settings.headers:
            _ascii_setting(name, "dkim.headers", "header names such as 'Subject'")
        key, where = cls._read_key(settings, resolve)
        signer = cls(selector, domain, key, settings.headers)
        try:
            signer.sign(b"From: a@b.c\r\nList-Unsubscribe: <x>\r\nList-Unsubscribe-Post: x\r\n\r\ncheck\r\n")
        except (dkim.DKIMException, ValueError) as exc:
            raise ConfigError(
                f"the DKIM private key cannot sign ({' '.join(str(exc).split())})",
                where=where,
                fix="use an unencrypted PEM RSA or Ed25519 key (e.g. `openssl genrsa 2048`)",
            ) from exc
        return signer

    @staticmethod
    def _read_key(settings: DkimSettings, resolve: Path | None) -> tuple[bytes, str]:
        if settings.private_key:
            where = "NEWSLETTER_DKIM__PRIVATE_KEY"
            return _pem_bytes(settings.private_key.encode("utf-8"), where), where
        assert settings.private_key_path is not None
        path = settings.private_key_path.expanduser()
        if resolve is not None and not path.is_absolute():
            path = resolve / path
        try:
            return _pem_bytes(path.read_bytes(), str(path)), str(path)
        except OSError as exc:
            raise ConfigError(
                f"cannot read the DKIM private key ({exc.strerror})",
                where=str(path),
                fix="check dkim.private_key_path or set NEWSLETTER_DKIM__PRIVATE_KEY",
            ) from exc

    def sign(self, message: bytes) -> bytes:
        """The message with its DKIM-Signature header in front, as it must go on the wire."""
        header = dkim.sign(
            message,
            self.selector,
            self.domain,
            self.private_key,
            include_headers=self.headers,
            canonicalize=(b"relaxed", b"relaxed"),
            linesep=b"\r\n",
        )
        return bytes(header) + message


def _pem_bytes(key: bytes, where: str) -> bytes:
    """A PEM key is ASCII through and through; anything else is a paste or encoding accident."""
    if key.isascii():
        return key
    for number, line in enumerate(key.splitlines(), start=1):
        if not line.isascii():
            column = next(i for i, byte in enumerate(line, start=1) if byte > 127)
            raise ConfigError(
                f"the DKIM private key has a non-ASCII character at line {number}, column {column}",
                where=where,
                fix="use the PEM file exactly as `openssl genrsa 2048` wrote it (BEGIN/END lines and base64)",
            )
    raise AssertionError("unreachable: a non-ASCII key has a non-ASCII line")


def _ascii_setting(value: str, key: str, example: str) -> str:
    if value.isascii():
        return value
    raise ConfigError(f"{key} {value!r} is not ASCII", where=key, fix=f"use {example}")


def _domain(value: str) -> str:
    """The signing domain as DNS has it: an internationalised name becomes its xn-- form."""
    try:
        return value.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ConfigError(
            f"dkim.domain {value!r} is not a valid domain name ({exc})",
            where="dkim.domain",
            fix="use the domain of the From address, e.g. 'example.org'",
        ) from exc
