"""Is NEWSLETTER_SECRET strong enough to sign links that anyone on the internet can see?

The check is simple and says exactly what it measures: at least 32 characters not counting
whitespace, and at least 8 different ones. That refuses a blank secret, "x", 40 spaces, one
character repeated, or "abab..."; a value from `secrets.token_urlsafe(32)` (43 characters from
64) or `secrets.token_hex(16)` passes. It cannot prove randomness: a long English sentence
passes too, so the README says how to make one. NEWSLETTER_SECRET_PREVIOUS, while a secret is
rotated out, opens links just as well, so it meets the same rule.
"""

from __future__ import annotations

from ..errors import ConfigError

MIN_LENGTH = 32
MIN_DISTINCT = 8  # a random 32-digit hex key has fewer than 8 distinct digits far under once in a million
PREVIOUS_NAME = "NEWSLETTER_SECRET_PREVIOUS"
HOW_TO_MAKE = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
PREVIOUS_FIX = f"remove {PREVIOUS_NAME} (links signed with it stop working); a weak key was never safe"


def secret_weakness(secret: str | None) -> str | None:
    """Why the secret is too weak, in a few words, or None when it passes."""
    core = "".join((secret or "").split())
    if not core:
        return "is not set" if not secret else "is only whitespace"
    if len(core) < MIN_LENGTH:
        return f"has {len(core)} characters (not counting spaces), fewer than {MIN_LENGTH}"
    distinct = len(set(core))
    if distinct < MIN_DISTINCT:
        return f"uses only {distinct} different characters, fewer than {MIN_DISTINCT}"
    return None


def require_strong_secret(secret: str | None, purpose: str, where: str) -> str:
    """The secret itself, or a one-line error saying what is wrong with it and how to make one."""
    weakness = secret_weakness(secret)
    if weakness is None:
        assert secret is not None
        return secret
    raise ConfigError(
        f"NEWSLETTER_SECRET {weakness}, too weak for {purpose}",
        where=where,
        fix=f"set it to at least {MIN_LENGTH} random characters, e.g. `{HOW_TO_MAKE}`",
    )


def require_strong_previous(previous: str | None, where: str) -> None:
    """A secret being rotated out opens links as the current one does, so the same rule holds."""
    weakness = previous_weakness(previous)
    if weakness is not None:
        raise ConfigError(
            f"{PREVIOUS_NAME} {weakness}, too weak to check links with",
            where=where,
            fix=PREVIOUS_FIX,
        )


def previous_weakness(previous: str | None) -> str | None:
    """Why a configured previous secret is too weak, or None when it passes or is not set."""
    return secret_weakness(previous) if previous else None
