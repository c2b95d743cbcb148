"""Composed messages: the headers we promise, no header injection whatever the input, DKIM that verifies."""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import dkim
import pytest
from helpers.samples import on_screen
from helpers.smtp_servers import LoopbackServer, write_config, write_subscribers

from newsletter.mail.compose import HeaderValueError, MessageComposer
from newsletter.mail.wire import to_wire
from newsletter.models import IssueInfo, Subscriber
from newsletter.pipeline.send import SendOptions, run_send
from newsletter.render.digest import RenderedDigest
from newsletter.settings import Settings, load_settings

ISSUE = IssueInfo(
    issue_id="2024-W11",
    issue_date=date(2024, 3, 14),
    list_name="test",
    title="Test Digest",
    window_start=date(2024, 3, 8),
)
URL = "https://papers.example.org/unsubscribe?list=test&email=a%40example.org&token=abc"
EXPECTED_HEADERS = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "content-type",
}
EVIL = [
    "x\r\nBcc: evil@x.example",
    "x\nBcc: evil@x.example",
    "x\rBcc: evil@x.example",
    "x\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029Bcc: evil@x.example",
    "=?utf-8?q?x=0D=0ABcc:_evil@x?=",
    "=?utf-8?b?" + base64.b64encode(b"x\r\nBcc: evil@x").decode() + "?=",
    "caf\u00e9 =?utf-8?q?=0D=0ABcc:_evil@x?= \u00fcber",
    "A" * 3000,
    "\u00e9" * 1500,
    '"quoted", <angle> (comment) ; semi: colon \\ back',
    "x\r\n\r\nbody starts here",
]


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    return load_settings(write_config(tmp_path), **overrides)


def digest(subject: str = "Test Digest 2024-W11: A paper") -> RenderedDigest:
    return RenderedDigest(
        subject=subject, html="<p>Hello</p>\n" + "<b>x</b> " * 500, text="Hello\n" + "y " * 900
    )


def parse(data: bytes) -> email.message.EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def assert_clean(data: bytes) -> None:
    """No extra header, no line break in any header value, no line over 998 bytes."""
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    message = parse(data)
    names = [name.lower() for name in message]
    assert set(names) == EXPECTED_HEADERS and len(names) == len(EXPECTED_HEADERS)
    for name in names:
        value = str(message[name])
        assert "\r" not in value and "\n" not in value, (name, value)
    assert len(message["to"].addresses) == 1
    assert message.get_content_type() == "multipart/alternative"


def test_message_has_every_promised_header(tmp_path: Path) -> None:
    composer = MessageComposer(settings_for(tmp_path), ISSUE, "secret")
    subscriber = Subscriber(email="Ada@Example.org", name="Ada Lovelace")
    composed = composer.compose(subscriber, digest(), URL, now=datetime(2024, 3, 14, tzinfo=UTC))
    message = parse(composed.data)
    assert str(message["from"]) == "Test Digest <digest@example.org>"
    assert str(message["to"]) == "Ada Lovelace <Ada@Example.org>"
    assert str(message["subject"]) == "Test Digest 2024-W11: A paper"
    assert message["date"].datetime == datetime(2024, 3, 14, tzinfo=UTC)
    assert str(message["message-id"]) == composed.message_id
    assert str(message["mime-version"]) == "1.0"
    assert str(message["list-id"]) == "Test Digest <test.example.org>"
    assert str(message["list-unsubscribe"]).startswith(f"<{URL}>, <mailto:digest@example.org?subject=")
    assert str(message["list-unsubscribe-post"]) == "List-Unsubscribe=One-Click"
    text, html = [part.get_content_type() for part in message.iter_parts()]
    assert (text, html) == ("text/plain", "text/html")
    assert_clean(composed.data)


def test_message_id_is_the_same_for_the_same_issue_and_subscriber_on_every_run(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    one = MessageComposer(settings, ISSUE, "secret").compose(Subscriber(email="a@example.org"), digest(), URL)
    two = MessageComposer(settings, ISSUE, "secret").compose(Subscriber(email="A@example.org"), digest(), URL)
    other = MessageComposer(settings, ISSUE, "secret").compose(
        Subscriber(email="b@example.org"), digest(), URL
    )
    assert one.message_id == two.message_id != other.message_id


@pytest.mark.parametrize("evil", EVIL)
def test_no_header_injection_through_names_subjects_or_titles(tmp_path: Path, evil: str) -> None:
    settings = settings_for(tmp_path, title=evil, sender={"name": evil, "address": "digest@example.org"})
    composer = MessageComposer(settings, ISSUE, "secret")
    smuggler = RenderedDigest(
        subject=f"Digest: {evil}",
        html=f"<p>{evil}</p>\n.\r\nMAIL FROM:<x@y>\r\n\n.\n.hidden\n..two\n",
        text=f"{evil}\r\n.\r\nRCPT TO:<x@y>\n.\rx\r.\r\n",
    )
    for body in (digest(f"Digest: {evil}"), smuggler):
        composed = composer.compose(Subscriber(email="a@example.org", name=evil), body, URL)
        assert_clean(composed.data)
        # Framed by hand as it is built: only CRLF line ends, every leading dot doubled, one end marker.
        assert composed.wire == to_wire(composed.data)
        assert composed.wire.find(b"\r\n.\r\n") == len(composed.wire) - 5
    message = parse(composed.data)
    assert "bcc" not in [name.lower() for name in message]
    assert message["to"].addresses[0].addr_spec == "a@example.org"


def test_encoded_word_lookalikes_stay_literal_text(tmp_path: Path) -> None:
    lookalike = "=?utf-8?q?x=0D=0ABcc:_evil@x?="
    composer = MessageComposer(settings_for(tmp_path), ISSUE, "secret")
    composed = composer.compose(Subscriber(email="a@example.org", name=lookalike), digest(lookalike), URL)
    message = parse(composed.data)
    assert str(message["subject"]) == lookalike
    assert message["to"].addresses[0].display_name == lookalike


@pytest.mark.parametrize(
    "address", ["a@example.org\r\nBcc: evil@x", "a@example.org, b@example.org", "<a@b.c>", "a\u00e9@b.c"]
)
def test_addresses_that_cannot_be_a_single_mailbox_are_refused(tmp_path: Path, address: str) -> None:
    composer = MessageComposer(settings_for(tmp_path), ISSUE, "secret")
    with pytest.raises(HeaderValueError):
        composer.compose(Subscriber(email="a@example.org"), digest(), URL, to_address=address)


def test_a_composed_message_unframed_is_clean_bytes(tmp_path: Path) -> None:
    composer = MessageComposer(settings_for(tmp_path), ISSUE, "preview")
    data = composer.compose(Subscriber(email="a@example.org"), digest(), URL).data
    assert_clean(data)


def make_dkim_key() -> tuple[str, bytes]:
    """A fresh RSA key: the PEM private key and the DNS TXT record that publishes it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode("ascii")
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def test_dkim_signature_over_the_bytes_received_by_the_server_verifies(tmp_path: Path) -> None:
    pem, record = make_dkim_key()
    write_subscribers(tmp_path / "subscribers" / "test.csv", 2)
    with LoopbackServer() as server:
        settings = load_settings(
            write_config(tmp_path, port=server.port),
            dkim={"selector": "news", "domain": "example.org", "private_key": pem},
        )
        report = run_send(settings, SendOptions())
    assert report.sent == 2

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return record if name == b"news._domainkey.example.org." else b""

    for item in server.handler.received:
        assert dkim.verify(item.data, dnsfunc=dns)
        signature = parse(item.data)["dkim-signature"]
        signed = [h.strip().lower() for h in str(signature).split("h=")[1].split(";")[0].split(":")]
        assert signed == [
            "from",
            "to",
            "subject",
            "date",
            "message-id",
            "mime-version",
            "content-type",
            "list-id",
            "list-unsubscribe",
            "list-unsubscribe-post",
            "reply-to",  # listed, absent here: signing it means none can be added
            "from",  # oversigned: a second From added on the way breaks the signature
        ]
        head, body = item.data.split(b"\r\n\r\n", 1)
        assert not dkim.verify(head + b"\r\nFrom: Bank <ceo@bank.example>\r\n\r\n" + body, dnsfunc=dns)
        assert max(len(line) for line in item.data.split(b"\r\n")) <= 998
        assert not dkim.verify(
            item.data.replace(
                b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
                b"List-Unsubscribe-Post: List-Unsubscribe=Two-Click",
            ),
            dnsfunc=dns,
        )


def test_cached_line_encoding_gives_quoted_printable_framed_for_smtp_data() -> None:
    from newsletter.mail.compose import LineEncoder

    def quoted_printable(text: str) -> bytes:
        """The plain way: the standard library's encoder, CRLF line ends."""
        normalised = text.replace("\r\n", "\n").replace("\r", "\n")
        return binascii.b2a_qp(normalised.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")

    encoder = LineEncoder(max_lines=3)
    samples = [
        "plain\nlines\n",
        "trailing \nspace\t\n.\n",
        "caf\u00e9 " * 40 + "\r\nx\ry",
        "=?utf-8?q?x?=\n\n",
        "",
        "a" * 500,
        ".hidden line\n..two dots\n",
        "x" * 75 + "." + "y" * 90,  # a soft break right before a dot
    ]
    for text in samples * 3:
        assert encoder.encode(text) + b"\r\n.\r\n" == to_wire(quoted_printable(text) + b"\r\n")


def test_a_line_is_cached_only_once_it_comes_back() -> None:
    """One reader's own lines (their links) are used once: caching them only costs memory."""
    from newsletter.mail.compose import LineEncoder

    encoder = LineEncoder()
    encoder.encode("shared line\nreader one's link")
    assert encoder._cache == {}
    encoder.encode("shared line\nreader two's link")
    assert list(encoder._cache) == ["shared line"]


@pytest.mark.parametrize(
    "pieces",
    [
        ["<p>caf\u00e9 ", "<i>" + "x" * 300 + "\u201cquoted\u201d</i>", "</p>\n.dot line\n", "<b>"],
        ["<p>" + '<a href="x">y</a> ' * 80, "</p>\n<p>short</p>"],  # a line to fold after tag names
        ["<p>", "x" * 1200, "</p>"],  # a line no tag can break: only quoted-printable carries it
        ["a\r", "\nb\rc\r\n", "\u00e9" * 400],  # line ends split between pieces
        [".starts with a dot", "\n..and two\n"],
        [],
    ],
)
def test_html_pieces_encode_to_the_7bit_lines_of_their_join(pieces: list[str]) -> None:
    """HtmlEncoder encodes shared pieces once; what it sends must be seven_bit_line's, line by line."""
    from newsletter.mail.compose import HtmlEncoder, seven_bit_line

    joined = "".join(pieces).replace("\r\n", "\n").replace("\r", "\n")
    framed = [seven_bit_line(line) for line in joined.split("\n")]
    expected = b"" if None in framed else b"\r\n".join(line or b"" for line in framed)
    encoder = HtmlEncoder(max_bytes=500)  # cleared now and then: cached and fresh pieces both seen
    for _ in range(3):
        assert encoder.encode(pieces) == expected


def html_part(data: bytes) -> email.message.EmailMessage:
    parts = [part for part in parse(data).walk() if part.get_content_type() == "text/html"]
    assert len(parts) == 1 and isinstance(parts[0], email.message.EmailMessage)
    return parts[0]


LONG_CARD = (
    '<p class="card" style="margin:0">'
    + " ".join(f'caf\u00e9 <span class="hl" style="color:#111">word{i}</span>\u2014' for i in range(60))
    + "</p>"
)


@pytest.mark.parametrize(
    "page",
    [
        "<p>Hello</p>\n" + "<b>x</b> " * 500,  # a line of 4,500 octets, broken after tag names
        f"<html><body>\n{LONG_CARD}\n.a line that starts with a dot\n</body></html>",
        "<p>caf\u00e9 \u201cquoted\u201d \U0001f600</p>\r\n<p>= signs = everywhere</p>",
    ],
    ids=["long-line", "long-card-and-dot", "beyond-ascii"],
)
def test_the_html_part_goes_unencoded_and_shows_the_same(tmp_path: Path, page: str) -> None:
    composer = MessageComposer(settings_for(tmp_path), ISSUE, "secret")
    data = composer.compose(Subscriber(email="a@example.org"), RenderedDigest("s", page, "text"), URL).data
    part = html_part(data)
    assert part["Content-Transfer-Encoding"] == "7bit"
    assert max(len(line) for line in data.split(b"\r\n")) <= 998 and data.isascii()
    assert on_screen(part.get_content()) == on_screen(page)


@pytest.mark.parametrize(
    "page",
    ["x" * 1200, "<style>p { font-family: 'Caf\u00e9 Sans' }</style><p>caf\u00e9</p>"],
    ids=["a-long-line-without-a-tag", "beyond-ascii-in-a-style-block"],
)
def test_html_that_cannot_go_unencoded_stays_quoted_printable(tmp_path: Path, page: str) -> None:
    composer = MessageComposer(settings_for(tmp_path), ISSUE, "secret")
    data = composer.compose(Subscriber(email="a@example.org"), RenderedDigest("s", page, "text"), URL).data
    part = html_part(data)
    assert part["Content-Transfer-Encoding"] == "quoted-printable"
    assert part.get_content() == page
