"""Settings from newsletter.toml overridden by NEWSLETTER_* environment variables, validated.

The file and the variables are read by configfile.py. Plain scalar variables (NEWSLETTER_SECRET,
NEWSLETTER_BASE_URL) are taken as they are; nested (NEWSLETTER_SMTP__PORT) and JSON ones go
through pydantic-settings' environment source, imported only then, as it costs more than the rest.
"""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .configfile import (
    CONFIG_NAME,
    DATABASE_FILE,
    DEFAULT_LIST,
    PREFIX,
    SUBSCRIBERS_DIR,
    ListPlaces,
    check_key_names,
    describe,
    environment,
    find_config,
    invalid_setting,
    list_name_problem,
    read_config,
    unknown_setting,
    variable_for,
)

EMBEDDED = "embedded"
# An address an envelope can carry as is: ASCII dot-atom local part (RFC 5321), plain domain.
PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*/=?^_`{|}~.+-]{1,64}@[A-Za-z0-9.-]{1,253}")


def is_loopback_host(host: str) -> bool:
    """Only this machine can reach it (127.0.0.0/8, ::1, localhost): the one rule for a local trial."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        import ipaddress  # only for hosts given as addresses: keeps start-up small

        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(value: str | None) -> str | None:
    """The public address links point at, absolute and https: a mail client cannot follow anything else."""
    from urllib.parse import urlsplit

    text = (value or "").strip()
    if not text:
        return None
    problem = None
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018  # a port that is not a number raises here
    except ValueError:
        problem = "its port is not a number"
    if any(character.isspace() for character in text):
        problem = "it contains a space"
    elif parts.scheme.lower() not in ("https", "http") or not parts.hostname:
        problem = "it is not an absolute URL"
    elif parts.scheme.lower() == "http" and not is_loopback_host(parts.hostname):
        problem = "plain http is only for a loopback host (localhost, 127.0.0.1)"
    elif parts.query or parts.fragment or parts.username is not None:
        problem = "it has a query, fragment or login"
    if problem:
        raise ValueError(f"{text!r}: {problem}; use https://HOST[/PATH], e.g. https://papers.example.org")
    return text


class _Section(BaseModel):
    """A settings table; a misspelt key is an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class SenderSettings(_Section):
    """Who the digest comes from: shown in From and in the footer."""

    name: str = "Paper Digest"
    address: str = "digest@localhost"
    reply_to: str | None = None
    postal_address: str = ""
    bounce_address: str | None = Field(
        default=None, description="the envelope sender (MAIL FROM) bounces go to; unset = address"
    )
    verp: bool | None = Field(
        default=None,
        description="a signed VERP return path per message (bounce_address+b-TOKEN@domain): "
        "unset = on when bounce_address is set, true = on (also for address), false = off",
    )

    @field_validator("bounce_address")
    @classmethod
    def _plain_address(cls, value: str | None) -> str | None:
        if value is not None and not PLAIN_ADDRESS.fullmatch(value.strip()):
            raise ValueError(f"{value!r} is not a plain ASCII address like bounces@example.org")
        return value.strip() if value is not None else None

    @property
    def envelope_sender(self) -> str:
        """MAIL FROM when VERP is off: the bounce address, else the From address."""
        return self.bounce_address or self.address

    @property
    def uses_verp(self) -> bool:
        """VERP on: asked for, or left unset with a bounce address configured."""
        return self.verp if self.verp is not None else bool(self.bounce_address)


class SmtpSecurity(StrEnum):
    """How the SMTP connection is encrypted."""

    AUTO = "auto"  # STARTTLS whenever the server offers it, plain otherwise
    STARTTLS = "starttls"  # STARTTLS required: a server that does not offer it is an error
    TLS = "tls"  # TLS from the first byte (port 465)
    NONE = "none"  # never encrypt, even when the server offers STARTTLS


class SmtpSettings(_Section):
    """Where mail goes; host 'embedded' runs an in-process server that writes to the outbox."""

    host: str = EMBEDDED
    port: int = Field(default=25, ge=0, le=65535)
    security: SmtpSecurity = SmtpSecurity.AUTO
    username: str | None = None
    password: str | None = None
    allow_plaintext_auth: bool | None = Field(
        default=None,
        description="send the login unencrypted: unset = only to a server on this machine, "
        "true = anywhere, false = never",
    )
    timeout: float = Field(default=30.0, gt=0)
    connections: int = Field(default=4, ge=1, le=64)
    messages_per_connection: int = Field(default=100, ge=1)
    rate_per_second: float = Field(default=0.0, ge=0, description="0 means no limit")
    rate_per_hour: int = Field(default=0, ge=0, description="0 means no limit")
    max_attempts: int = Field(default=3, ge=1)
    backoff_seconds: float = Field(default=1.0, ge=0)
    max_failures_in_a_row: int = Field(default=20, ge=1)
    outbox: Path = Path("outbox")
    ca_file: Path | None = Field(
        default=None, description="CA bundle that signed the server's certificate (private relays)"
    )
    local_hostname: str | None = Field(
        default=None, description="name sent in EHLO (default: this host's FQDN)"
    )
    pipelining: bool = Field(
        default=True,
        description="send MAIL, RCPT and DATA in one round trip when the server offers PIPELINING",
    )
    compose_processes: int | None = Field(
        default=None,
        ge=0,
        description="processes that select, render and compose; 0 = in the sender, unset = auto",
    )

    @property
    def is_embedded(self) -> bool:
        return self.host.strip().lower() == EMBEDDED

    @property
    def is_loopback(self) -> bool:
        """A server on this machine (127.0.0.0/8, ::1, localhost): a local trial, like the outbox."""
        return is_loopback_host(self.host)


class Filler(StrEnum):
    """What fills the rest of a digest when fewer papers than top_n match the reader's keywords."""

    NOTHING = "nothing"  # a short digest is better than a padded one
    POPULAR = "popular"  # the week's most upvoted papers, under their own heading


class SelectionSettings(_Section):
    """How papers are scored and how many each subscriber gets."""

    top_n: int = Field(default=10, ge=1, le=100)
    window_days: int = Field(default=7, ge=1)
    half_life_days: float = Field(default=3.0, gt=0)
    keyword_weight: float = Field(default=1.0, ge=0)
    recency_weight: float = Field(default=0.3, ge=0)
    popularity_weight: float = Field(default=0.2, ge=0)
    title_weight: float = Field(default=2.0, ge=0)
    min_relevance: float = Field(default=0.0, ge=0)
    phrase_boost: float = Field(
        default=0.5, ge=0, description="extra weight when a multi-word keyword appears as a phrase"
    )
    proximity_window: int = Field(
        default=4, ge=0, description="words allowed between a keyword's terms for a partial boost"
    )
    min_coverage: float = Field(
        default=0.3,
        ge=0,
        le=1,
        description="share (idf-weighted) of a multi-word keyword's terms a paper must contain",
    )
    semantic_weight: float = Field(
        default=0.3,
        ge=0,
        le=1,
        description="share of a keyword's relevance from meaning (embeddings), not words; 0 = words only",
    )
    match_words: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="relevance (window's best = 1) at which a paper holding a multi-word keyword's "
        "words together (the phrase, or all within proximity_window) matches it",
    )
    match_one_word: float = Field(
        default=0.3, ge=0, le=1, description="the same for a one-word keyword, often used in passing"
    )
    match_cosine: float = Field(
        default=0.45,
        ge=-1,
        le=1,
        description="cosine between keyword and paper at which a paper matches by meaning alone",
    )
    filler: Filler = Field(
        default=Filler.NOTHING,
        description="what fills a digest when fewer than top_n papers match: nothing (a shorter "
        "digest) or popular (the week's most upvoted papers, in their own section)",
    )
    feedback_weight: float = Field(
        default=0.5,
        ge=0,
        description="how far a reader's 'more/less like this' moves similar papers; 0 = ignore feedback",
    )
    bm25_k1: float = Field(default=1.5, ge=0)
    bm25_b: float = Field(default=0.75, ge=0, le=1)


class SourceSettings(_Section):
    """A feed `send` fetches for each issue when no --papers are given."""

    kind: Literal["hf", "arxiv"]
    query: str = ""
    base_url: str | None = None


class FetchSettings(_Section):
    """Limits on what a papers server can make a fetch hold or wait for (see sources/http.py)."""

    max_bytes: int = Field(
        default=2 * 1024 * 1024, ge=1024, description="largest answer, before and after decompression"
    )
    request_deadline: float = Field(default=30.0, gt=0, description="seconds for one whole answer")
    fetch_deadline: float = Field(default=600.0, gt=0, description="seconds for one fetch, all pages")
    timeout: float = Field(default=30.0, gt=0, description="seconds to wait for each network read")
    allowed_hosts: list[str] = Field(
        default_factory=list, description="hosts a redirect may lead to besides the source's own"
    )


class ServeSettings(_Section):
    """What one client of `newsletter serve` may hold (see newsletter/web/server.py)."""

    request_timeout: float = Field(
        default=10.0, gt=0, description="seconds for a request's head and body to arrive in full"
    )
    keep_alive: float = Field(default=5.0, ge=1, description="seconds an idle connection is kept open")
    max_connections: int = Field(
        default=200, ge=2, description="open connections before new requests get 503"
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses (or networks) of reverse proxies whose X-Forwarded-For names the client; "
        "from any other peer the header is ignored",
    )
    public_lists: list[str] = Field(
        default_factory=list,
        description="lists besides default_list whose /subscribe form takes sign-ups from anyone",
    )

    @field_validator("public_lists")
    @classmethod
    def _list_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if problem := list_name_problem(name):
                raise ValueError(problem)
        return value


class BounceSettings(_Section):
    """How `subscribers bounces` treats refusals that are not about the mailbox (see "Subscribers")."""

    policy_blocks_to_mark: int = Field(
        default=3,
        ge=1,
        description="mark a reader bounced after 5.7.x (spam or policy) blocks of this many different "
        "messages; one block may be the relay's or the day's, not the reader's",
    )


class PreviewSettings(_Section):
    """`preview --serve`'s "send me this" (see newsletter/preview/session.py)."""

    send_to: list[str] = Field(
        default_factory=list,
        description="addresses 'send me this' may mail, besides sender.address and sender.reply_to",
    )


class DkimSettings(_Section):
    """Optional DKIM signing of every message."""

    selector: str | None = None
    domain: str | None = None
    private_key_path: Path | None = None
    private_key: str | None = Field(
        default=None, description="PEM key itself, e.g. from NEWSLETTER_DKIM__PRIVATE_KEY"
    )
    headers: list[str] = Field(
        default_factory=lambda: [
            "From",
            "To",
            "Subject",
            "Date",
            "Message-ID",
            "MIME-Version",
            "Content-Type",
            "List-Id",
            "List-Unsubscribe",
            "List-Unsubscribe-Post",
            "Reply-To",
        ]
    )

    @property
    def enabled(self) -> bool:
        return bool(self.selector and self.domain and (self.private_key or self.private_key_path))


class Settings(BaseModel):
    """Everything a run needs; relative paths are resolved against the config file's folder."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    title: str = "Paper Digest"
    secret: str | None = None
    secret_previous: str | None = Field(
        default=None, description="the secret being rotated out: links it signed still verify"
    )
    base_url: str | None = None
    papers: list[Path] = Field(default_factory=list)
    sources: list[SourceSettings] = Field(default_factory=list)
    fetch: FetchSettings = Field(default_factory=FetchSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    preview: PreviewSettings = Field(default_factory=PreviewSettings)
    cache_dir: Path = Path("papers-cache")
    issue_date: date | None = None
    default_list: str = DEFAULT_LIST
    subscribers_dir: Path = SUBSCRIBERS_DIR
    templates_dir: Path = Path("templates")
    ledger: Path = DATABASE_FILE  # the SQLite database file, when database_url is not set
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL shared by several hosts, e.g. postgresql://user:password@host:5432/newsletter",
    )
    archive_dir: Path = Path("archive")
    feedback_db: Path = Field(
        default=Path("feedback.db"),
        description="feedback kept by releases before the database: imported into it once, then renamed",
    )
    log_file: Path | None = None
    on_uncertain: Literal["resend", "hold"] = Field(
        default="resend",
        description="a message a sender handed to the server and then fell silent on (killed, host "
        "lost): resend = another sender sends it again with the same Message-ID, hold = keep it "
        "'held' for the operator (`send --resend-held` sends those)",
    )
    reconnect_seconds: int = Field(
        default=60,
        ge=0,
        le=3600,
        description="how long a sender waits for a PostgreSQL server that went away mid-send (a "
        "restart, a failover) before it stops with an error; nothing recorded is lost either way",
    )
    lease_seconds: int = Field(
        default=60,
        ge=2,
        le=3600,
        description="how long a sender that stops heartbeating keeps its claimed deliveries before "
        "other senders take them over (heartbeats come every sixth of it)",
    )
    send_empty_digests: bool = Field(
        default=False, description="mail 'nothing new this week' to subscribers with no matching papers"
    )
    sender: SenderSettings = Field(default_factory=SenderSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    selection: SelectionSettings = Field(default_factory=SelectionSettings)
    dkim: DkimSettings = Field(default_factory=DkimSettings)
    bounces: BounceSettings = Field(default_factory=BounceSettings)
    config_dir: Path = Field(default_factory=Path.cwd, exclude=True)
    config_file: Path | None = Field(default=None, exclude=True)

    @field_validator("base_url")
    @classmethod
    def _absolute_base_url(cls, value: str | None) -> str | None:
        return check_base_url(value)

    @field_validator("default_list")
    @classmethod
    def _list_name(cls, value: str) -> str:
        if problem := list_name_problem(value):
            raise ValueError(problem)
        return value

    @field_validator("papers", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, (str, Path)) else value

    @model_validator(mode="before")
    @classmethod
    def _environment_beats_the_file(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return _deep_update(data, environment_values())

    @property
    def places(self) -> ListPlaces:
        """Where lists and the log live, as the list commands see them (one rule for both)."""
        return ListPlaces(
            self.config_dir,
            self.subscribers_dir,
            self.default_list,
            self.log_file,
            self.ledger,
            self.database_url,
        )

    def path(self, value: Path) -> Path:
        """Resolve a configured path the way a user reading the config file expects."""
        return self.places.path(value)

    @property
    def source_label(self) -> str:
        """Where these settings came from, for error messages."""
        if self.config_file is not None:
            return str(self.config_file)
        return f"the environment (no {CONFIG_NAME} in {self.config_dir})"

    def list_path(self, name: str | None = None) -> Path:
        """Where the CSV of a subscriber list lives; a name that would leave the folder is refused."""
        return self.places.list_path(name)


def load_settings(explicit: Path | None = None, **overrides: Any) -> Settings:
    """Read the config file, apply the environment, and explain any mistake by key and file."""
    path = find_config(explicit)
    data = read_config(path)
    where = describe(path)
    check_key_names(data, where)
    data.update(overrides)
    data["config_dir"] = (path.parent if path else Path.cwd()).resolve()
    data["config_file"] = path.resolve() if path else None
    try:
        return Settings(**data)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "extra_forbidden":
            raise unknown_setting(first["loc"], _known_keys(first["loc"][:-1]), where) from exc
        key = ".".join(str(part) for part in first["loc"])
        # Our own validators' words, without pydantic's "Value error, " in front.
        why = str(first["ctx"]["error"]) if first["type"] == "value_error" else first["msg"]
        raise invalid_setting(key, why, variable_for(first["loc"]), where) from exc


def _known_keys(table: tuple[int | str, ...]) -> list[str]:
    """The keys the table at this place (('smtp',), ('sources', 0)) has, for a "did you mean"."""
    model: type[BaseModel] = Settings
    for part in table:
        if isinstance(part, int):
            continue  # an entry of a list of tables, e.g. [[sources]]
        found = _model_in(model.model_fields[part].annotation)
        if found is None:
            return []
        model = found
    return [name for name, info in model.model_fields.items() if not info.exclude]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The settings table a field holds, itself or as the items of a list."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for arg in get_args(annotation) if (m := _model_in(arg)) is not None), None)


def environment_values() -> dict[str, Any]:
    """The NEWSLETTER_* variables as settings values, as pydantic-settings' environment source reads them."""
    found = environment()
    simple = _simple_fields()
    if all(key in simple or ("__" not in key and key not in Settings.model_fields) for key in found):
        return {key: value for key, value in found.items() if key in simple}
    from pydantic_settings import EnvSettingsSource  # the nested and JSON cases, rarely needed

    source = EnvSettingsSource(
        Settings,  # type: ignore[arg-type]  # it reads only model_fields and what is passed here
        case_sensitive=False,
        env_prefix=PREFIX,
        env_nested_delimiter="__",
    )
    return dict(source())


def _simple_fields() -> frozenset[str]:
    """Fields whose variable is taken as plain text: not a table, list or dict (those are JSON)."""
    return frozenset(name for name, info in Settings.model_fields.items() if not _complex(info.annotation))


def _complex(annotation: Any) -> bool:
    if get_origin(annotation) in (list, dict, tuple, set, frozenset):
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_complex(arg) for arg in get_args(annotation) if arg is not type(None))


def _deep_update(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`base` with `changes` on top, tables merged key by key (a variable overrides one key of a table)."""
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_update(merged[key], value)
        else:
            merged[key] = value
    return merged
