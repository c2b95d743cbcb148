"""SpamAssassin's local score of every message of the sample issue, as an inbox provider might see it.

    python benchmarks/spam_score.py                  # this checkout
    python benchmarks/spam_score.py --repo /old/one  # another version, for before/after

Copies the shipped newsletter.toml, examples/ and subscribers/ into a temporary folder, runs
`newsletter send` (the embedded outbox: 12 messages), then `spamassassin -L -t` (local tests
only, no network) on each message. Prints per message the score, the rules that scored and the
subject's length; then the largest and mean score. Needs Debian's spamassassin package.
"""

from __future__ import annotations

import argparse
import email
import email.header
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_SCORE = re.compile(r"Content analysis details:\s+\(([-\d.]+) points")
_RULE = re.compile(r"^\s*(-?\d+\.\d+)\s+([A-Z0-9_]+)\s", re.MULTILINE)


def send_sample(repo: Path, folder: Path) -> list[Path]:
    for name in ("newsletter.toml", "examples", "subscribers"):
        source = repo / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, folder / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["PYTHONPATH"] = str(repo)
    subprocess.run(
        [sys.executable, "-m", "newsletter", "send"], cwd=folder, env=env, check=True, capture_output=True
    )
    return sorted((folder / "outbox" / "new").iterdir())


def score(path: Path) -> tuple[float, list[str]]:
    report = subprocess.run(
        ["spamassassin", "-L", "-t"], stdin=path.open("rb"), capture_output=True, check=True
    ).stdout.decode("utf-8", "replace")
    details = report.split("Content analysis details:", 1)[1]
    found = _SCORE.search("Content analysis details:" + details)
    assert found, f"no score in SpamAssassin's report:\n{report}"
    total = float(found.group(1))
    rules = [f"{name} {points}" for points, name in _RULE.findall(details) if float(points) != 0]
    return total, rules


def subject_of(path: Path) -> str:
    message = email.message_from_bytes(path.read_bytes())
    return str(email.header.make_header(email.header.decode_header(message["Subject"] or "")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=REPO)
    args = parser.parse_args()
    if shutil.which("spamassassin") is None:
        raise SystemExit("needs spamassassin (apt-get install spamassassin)")
    with tempfile.TemporaryDirectory() as tmp:
        messages = send_sample(args.repo.resolve(), Path(tmp))
        with ThreadPoolExecutor(max_workers=6) as pool:
            results = list(pool.map(score, messages))
        print(f"repo {args.repo}: {len(messages)} messages")
        for path, (total, rules) in zip(messages, results, strict=True):
            subject = subject_of(path)
            print(f"{total:5.1f}  subject {len(subject):3d} chars  {' '.join(rules) or '-'}  | {subject}")
        totals = [total for total, _ in results]
        mean = statistics.mean(totals)
        print(f"largest score {max(totals):.1f}, mean {mean:.2f} (target: every one < 0.5)")


if __name__ == "__main__":
    main()
