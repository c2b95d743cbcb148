"""doctor finds what would make a send fail: a feed that is down, a template that does not render,
an empty next issue, a DKIM key that is broken or not what DNS publishes."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from helpers.http_servers import LocalHttpServer

from newsletter.cli import main
from newsletter.doctor import run_checks
from newsletter.settings import load_settings

REPO = Path(__file__).resolve().parents[1]


def doctor(*args: str) -> Result:
    return CliRunner().invoke(main, ["doctor", "--skip-dns", *args])


def line_for(result: Result, check: str) -> str:
    found = [line for line in result.stdout.splitlines() if line[5:].startswith(check + ":")]
    assert len(found) == 1, f"no single line for {check!r} in:\n{result.output}"
    return found[0]


def append(project: Path, text: str) -> None:
    with (project / "newsletter.toml").open("a", encoding="utf-8") as config:
        config.write("\n" + text + "\n")


@pytest.fixture
def feed() -> Iterator[LocalHttpServer]:
    body = (REPO / "examples" / "daily_papers_2024-03-14.json").read_bytes()
    server = LocalHttpServer(lambda path, query: (200, {"Content-Type": "application/json"}, body))
    server.start()
    yield server
    server.stop()


def test_every_source_is_fetched_a_little_and_one_that_is_down_fails(
    project: Path, feed: LocalHttpServer
) -> None:
    append(project, f'[[sources]]\nkind = "hf"\nbase_url = "{feed.url}"\n')
    append(project, '[[sources]]\nkind = "hf"\nbase_url = "http://127.0.0.1:9"\n')
    result = doctor()
    assert result.exit_code == 1
    assert line_for(result, "source 1 (hf)").startswith(f"ok   source 1 (hf): {feed.url} answered with ")
    assert line_for(result, "source 2 (hf)").startswith("FAIL")
    assert len(feed.requests) >= 1


def test_a_template_with_an_undefined_name_fails_before_send_would(project: Path) -> None:
    path = project / "templates" / "digest.txt"
    path.write_text(path.read_text(encoding="utf-8") + "{{ no_such_name }}\n", encoding="utf-8")
    result = doctor()
    assert result.exit_code == 1
    line = line_for(result, "templates render")
    assert line.startswith("FAIL") and "no_such_name" in line


def test_an_archive_template_with_an_undefined_name_fails_too(project: Path) -> None:
    (project / "templates" / "archive" / "index.html").write_text("{{ nope.nothing }}\n", encoding="utf-8")
    result = doctor()
    line = line_for(result, "templates render")
    assert line.startswith("FAIL") and "nope" in line
    assert not (project / "archive").exists()  # rendered in a scratch folder


def test_an_empty_next_issue_fails_naming_the_window(project: Path) -> None:
    text = (project / "newsletter.toml").read_text(encoding="utf-8")
    (project / "newsletter.toml").write_text(
        text.replace("issue_date = 2024-03-14", "issue_date = 2026-11-30")
    )
    result = doctor()
    assert result.exit_code == 1
    line = line_for(result, "next issue")
    assert line.startswith("FAIL") and "2026-11-24 to 2026-11-30" in line
    assert line_for(result, "templates render").startswith("ok")  # checked with a sample paper


def test_the_shipped_config_counts_the_next_issues_papers(project: Path) -> None:
    result = doctor()
    assert result.exit_code == 0, result.output
    assert (
        line_for(result, "next issue")
        == "ok   next issue: 69 paper(s) in 2024-W11 (2024-03-08 to 2024-03-14)"
    )
    assert line_for(result, "dkim").startswith("ok   dkim: not configured")


def dkim_key(folder: Path) -> tuple[Path, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = folder / "dkim.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return path, base64.b64encode(public).decode("ascii")


def test_dkim_prints_the_record_to_publish_and_compares_it_with_dns(project: Path) -> None:
    path, public = dkim_key(project)
    append(project, f'[dkim]\nselector = "news"\ndomain = "example.org"\nprivate_key_path = "{path}"\n')
    result = doctor()
    assert line_for(result, "dkim key") == (
        f'ok   dkim key: signs; publish TXT news._domainkey.example.org "v=DKIM1; k=rsa; p={public}"'
    )
    assert "not looked up" in line_for(result, "dkim dns")

    settings = load_settings(project / "newsletter.toml")
    asked: list[str] = []

    # DNS splits long records into strings; we join them
    def published(record: str) -> Callable[[str], list[str]]:
        def lookup(name: str) -> list[str]:
            asked.append(name)
            return [record]

        return lookup

    def missing(name: str) -> list[str]:
        raise LookupError("no TXT record found (NXDOMAIN)")

    same = {c.name: c for c in run_checks(settings, published(f"v=DKIM1; k=rsa; p={public}"))}
    other = {c.name: c for c in run_checks(settings, published("v=DKIM1; k=rsa; p=MIIBIjAN"))}
    absent = {c.name: c for c in run_checks(settings, missing)}
    assert asked == ["news._domainkey.example.org"] * 2
    assert same["dkim dns"].ok and "publishes this key" in same["dkim dns"].detail
    assert not other["dkim dns"].ok and "publishes a different key" in other["dkim dns"].detail
    assert not absent["dkim dns"].ok and "NXDOMAIN" in absent["dkim dns"].detail


def test_a_key_that_cannot_sign_fails(project: Path) -> None:
    (project / "dkim.pem").write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    append(project, '[dkim]\nselector = "news"\ndomain = "example.org"\nprivate_key_path = "dkim.pem"\n')
    result = doctor()
    assert result.exit_code == 1
    assert line_for(result, "dkim key").startswith("FAIL")
