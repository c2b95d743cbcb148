"""SpamAssassin's local verdict on one message, when the operator has it installed.

Local tests only (`-L`): nothing leaves the machine, no DNS blocklists are asked.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass

SPAMASSASSIN = "spamassassin"
TIMEOUT_SECONDS = 60.0
_STATUS = re.compile(rb"^X-Spam-Status:(.*?)^(?=\S)", re.MULTILINE | re.DOTALL | re.IGNORECASE)
_SCORE = re.compile(r"score=(-?\d+(?:\.\d+)?)\s+required=(-?\d+(?:\.\d+)?)")
_RULE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]{2,})\s+(.*)$")


@dataclass(frozen=True)
class SpamRule:
    """One rule that matched, with the points it added and SpamAssassin's description."""

    name: str
    points: float
    description: str


@dataclass(frozen=True)
class SpamVerdict:
    """The score, the threshold and the rules hit; `error` says why there is none."""

    available: bool
    score: float | None = None
    required: float | None = None
    rules: tuple[SpamRule, ...] = ()
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def spamassassin_path() -> str | None:
    """The installed spamassassin, or None: the check is optional."""
    return shutil.which(SPAMASSASSIN)


def spam_verdict(message: bytes) -> SpamVerdict:
    """Run `spamassassin -L -t` on the message and read its score and rules (blocking: a few seconds)."""
    program = spamassassin_path()
    if program is None:
        return SpamVerdict(False, error="spamassassin is not installed (apt-get install spamassassin)")
    try:
        done = subprocess.run(
            [program, "-L", "-t"], input=message, capture_output=True, timeout=TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired:
        return SpamVerdict(True, error=f"spamassassin gave no answer in {TIMEOUT_SECONDS:.0f} s")
    except OSError as exc:
        return SpamVerdict(True, error=f"spamassassin could not run ({exc.strerror})")
    return parse_report(done.stdout) or SpamVerdict(
        True, error=f"spamassassin gave no score: {done.stderr.decode('utf-8', 'replace').strip()[-300:]}"
    )


def parse_report(output: bytes) -> SpamVerdict | None:
    """Score from the X-Spam-Status header, rules from the report's points table."""
    status = _STATUS.search(output.split(b"\n\n", 1)[0] + b"\nX")
    if status is None:
        return None
    found = _SCORE.search(" ".join(status.group(1).decode("ascii", "replace").split()))
    if found is None:
        return None
    rules: list[SpamRule] = []
    table = output.decode("utf-8", "replace").split("Content analysis details:", 1)[-1]
    for line in table.splitlines():
        rule = _RULE.match(line)
        if rule is not None:
            rules.append(SpamRule(rule.group(2), float(rule.group(1)), rule.group(3).strip()))
        elif rules and line.startswith(" " * 20) and line.strip():
            last = rules[-1]  # a description continued on the next line
            rules[-1] = SpamRule(last.name, last.points, f"{last.description} {line.strip()}")
    return SpamVerdict(True, float(found.group(1)), float(found.group(2)), tuple(rules))
