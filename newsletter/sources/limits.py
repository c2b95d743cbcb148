"""Decode a response body chunk by chunk with a hard cap, so a gzip bomb never inflates in memory."""

from __future__ import annotations

import zlib

CHUNK = 64 * 1024  # most bytes one zlib call may produce, however small its input


class BodyTooLarge(Exception):
    """The body passed the cap, counted on the wire or after decompression."""


class CappedBody:
    """Collects a body: identity, gzip or deflate; anything else is refused before it is read."""

    def __init__(self, content_encoding: str, limit: int) -> None:
        encoding = content_encoding.strip().lower()
        if encoding in ("", "identity"):
            self._inflater = None
        elif encoding in ("gzip", "x-gzip"):
            self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._inflater = zlib.decompressobj(zlib.MAX_WBITS)
        else:
            raise ValueError(f"unsupported Content-Encoding {content_encoding[:40]!r}")
        self._deflate = encoding == "deflate"
        self.limit = limit
        self.wire = 0
        self._out = bytearray()

    def feed(self, chunk: bytes) -> None:
        """Count and decode one chunk from the wire."""
        self.wire += len(chunk)
        if self.wire > self.limit:
            raise BodyTooLarge
        if self._inflater is None:
            self._keep(chunk)
            return
        data = chunk
        while data:
            try:
                self._keep(self._inflater.decompress(data, CHUNK))
            except zlib.error as exc:
                if not (self._deflate and self.wire == len(chunk) and not self._out):
                    raise ValueError(f"bad compressed data: {exc}") from None
                # Some servers send raw deflate without the zlib header, as httpx also allows.
                self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                self._deflate = False
                continue
            data = self._inflater.unconsumed_tail

    def finish(self) -> bytes:
        """The decoded body; a truncated stream is an error, not half a page."""
        if self._inflater is not None:
            self._keep(self._inflater.flush(CHUNK))
            if not self._inflater.eof and self.wire:
                raise ValueError("the compressed body ends early")
        return bytes(self._out)

    def _keep(self, data: bytes) -> None:
        if len(self._out) + len(data) > self.limit:
            raise BodyTooLarge
        self._out += data
