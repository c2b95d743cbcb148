"""The store's tables as they are at the newest schema version, for queries on either engine.

`migrations.py` builds them step by step; a test checks that a database migrated from nothing has
exactly these tables, columns and keys on SQLite and on PostgreSQL. Times are ISO 8601 text in UTC
(what the CSV files hold, compared as text) except where only the database's clock may decide.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    text,
)

from ..statuses import STORED_STATUSES, SubscriberStatus

metadata = MetaData()


def in_set(column: str, values: Iterable[str]) -> CheckConstraint:
    """A CHECK that a text column holds one of a closed set (statuses are enums in Python too)."""
    listed = ", ".join(f"'{value}'" for value in values)
    return CheckConstraint(f"{column} IN ({listed})", name=f"{column}_known")


SUBSCRIBER_STATUSES = tuple(status.value for status in SubscriberStatus)
DELIVERY_STATUSES = tuple(str(status) for status in STORED_STATUSES)

# One row per (issue, list, address, channel): the ledger that makes a repeated run resume, and
# the queue every sender of the issue claims its work from (store/sendqueue.py).
deliveries = Table(
    "deliveries",
    metadata,
    Column("issue", Text, primary_key=True),
    Column("list", Text, primary_key=True),
    Column("email", Text, primary_key=True),
    Column("channel", Text, primary_key=True),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_reply", Text),
    Column("message_id", Text, nullable=False),
    Column("papers", Text, nullable=False, server_default="[]"),
    Column("updated_at", Text, nullable=False),
    Column("reader", Text),
    Column("owner", Text),  # the sender (senders.id) that claimed it; kept after, to say who sent it
    Column("shard", Text),  # "K/N" when a `send --shard K/N` queued it: only such a run claims it
    in_set("status", DELIVERY_STATUSES),
    Index("deliveries_by_address", "list", "channel", "email"),
    # Rows nobody owns, what a claim looks for; naming no column a sender's answer changes.
    Index(
        "deliveries_queue",
        "issue",
        "list",
        "channel",
        postgresql_where=text("owner IS NULL"),
        sqlite_where=text("owner IS NULL"),
    ),
    postgresql_with={"fillfactor": "60"},  # room on each page to rewrite a row in place
)

# Every `newsletter send` that worked on an issue: its lease, renewed by heartbeats on the
# database's clock. A sender whose lease ran out is dead to the others, whatever it thinks.
senders = Table(
    "senders",
    metadata,
    Column("id", Text, primary_key=True),  # host:pid:random, written into deliveries.owner
    Column("issue", Text, nullable=False),
    Column("list", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Text, nullable=False),
    Column("lease_until", Text, nullable=False),
    Column("finished_at", Text),
    Index("senders_of_issue", "issue", "list", "channel"),
)

# What an issue was built from (papers, templates, sender), so a past message can be rebuilt.
issue_snapshots = Table(
    "issue_snapshots",
    metadata,
    Column("issue", Text, primary_key=True),
    Column("list", Text, primary_key=True),
    Column("channel", Text, primary_key=True),
    Column("snapshot", LargeBinary, nullable=False),
    Column("updated_at", Text, nullable=False),
)

# A list, and what the store knows of its hand-kept CSV file (if it has one: csv_layout is set).
lists = Table(
    "lists",
    metadata,
    Column("name", Text, primary_key=True),
    Column("created_at", Text, nullable=False),
    Column("csv_layout", Text),  # JSON: the file's columns in order (unknown ones kept) and dialect
    Column("csv_signature", Text),  # the file as last synced: size, mtime and content hash
    Column("csv_digests", LargeBinary),  # each synced row's digest, in file order: what an edit changed
    Column("csv_last_issue", Text),  # the newest `last_issue` the file names (lost-database check)
    Column("csv_synced_at", Text),
)

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),  # order of arrival, for exports
    Column("list", Text, nullable=False),
    Column("email_key", Text, nullable=False),  # the address folded to lower case
    Column("email", Text, nullable=False),  # as written
    Column("name", Text, nullable=False, server_default=""),
    Column("keywords", Text, nullable=False, server_default=""),  # "; "-joined
    Column("status", Text, nullable=False),
    Column("subscribed_at", Text),
    Column("unsubscribed_at", Text),
    Column("confirmed_at", Text),
    Column("frequency", Text, nullable=False, server_default="weekly"),
    Column("pause_until", Text),
    Column("extra", Text, nullable=False, server_default="{}"),  # JSON: the CSV's unknown columns
    Column("changed_at", Text, nullable=False),  # to the microsecond: a send polls what changed
    in_set("status", SUBSCRIBER_STATUSES),
    Index("subscribers_by_address", "list", "email_key", unique=True),
    Index("subscribers_by_status", "list", "status"),
    Index("subscribers_in_order", "list", "id"),
    Index("subscribers_by_change", "list", "changed_at"),
)

# Each line of a list's CSV as it was when last synced (in the layout `lists` keeps): the base of
# the three-way merge.
csv_base = Table(
    "csv_base",
    metadata,
    Column("list", Text, primary_key=True),
    Column("email_key", Text, primary_key=True),
    Column("digest", BigInteger, nullable=False),  # of the line, its last_issue cell left out
    Column("line", Text, nullable=False),  # the line itself, without its line end
    Index("csv_base_by_digest", "list", "digest"),
)

# Addresses that must not be mailed on a list again unless their owner asks: why and since when.
suppressions = Table(
    "suppressions",
    metadata,
    Column("list", Text, primary_key=True),
    Column("email_key", Text, primary_key=True),
    Column("reason", Text, nullable=False),
    Column("created_at", Text, nullable=False),
)

# What someone asked for on the sign-up form, applied only when they confirm from their mailbox.
signups = Table(
    "signups",
    metadata,
    Column("list", Text, primary_key=True),
    Column("email_key", Text, primary_key=True),
    Column("email", Text, nullable=False),
    Column("name", Text, nullable=False, server_default=""),
    Column("keywords", Text, nullable=False, server_default=""),
    Column("frequency", Text, nullable=False, server_default="weekly"),
    Column("requested_at", Text, nullable=False),
)

# A reader's "more / less like this" on one paper (the latest click wins), newest first per reader.
feedback = Table(
    "feedback",
    metadata,
    Column("list", Text, primary_key=True),
    Column("email", Text, primary_key=True),  # folded to lower case
    Column("paper_id", Text, primary_key=True),
    Column("verdict", Text, nullable=False),
    Column("at", Text, nullable=False),
    in_set("verdict", ("more", "less")),
)

# Every paper an issue carried: its title, vector and telling terms, so feedback on it works later.
feedback_papers = Table(
    "feedback_papers",
    metadata,
    Column("id", Text, primary_key=True),
    Column("title", Text, nullable=False),
    Column("vector", LargeBinary, nullable=False),  # float16, the semantic model's unit row
    Column("seen", Text, nullable=False),  # when an issue last carried it
    Column("terms", Text, nullable=False, server_default=""),  # space-joined
)

# Hits per key and fixed time window, shared by every `serve` process (sign-ups, mails per address).
# Keys are hashed: no address or IP in clear. Windows older than a day are pruned by window_start.
rate_limits = Table(
    "rate_limits",
    metadata,
    Column("key", Text, primary_key=True),
    Column("window_start", Integer, primary_key=True),  # unix seconds
    Column("hits", Integer, nullable=False),
    Index("rate_limits_by_window", "window_start"),
)

# What `subscribers bounces` read about a reader: a bounce or complaint bound to one of our
# deliveries, once per report (`fingerprint`), so a second run over the same mailbox counts nothing
# twice; `report` lists them with the reason, and policy blocks are counted per message from here.
bounce_events = Table(
    "bounce_events",
    metadata,
    Column("list", Text, primary_key=True),
    Column("email_key", Text, primary_key=True),
    Column("fingerprint", Text, primary_key=True),  # sha256 of the report's bytes, hex
    Column("email", Text, nullable=False),
    Column("message_id", Text, nullable=False),  # of our delivery it is about
    Column("kind", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("received_at", Text, nullable=False),
    in_set("kind", ("hard", "soft", "policy", "complaint")),  # store/bouncelog.py EventKind
    Index("bounce_events_by_message", "message_id"),
)

# Which database this is, and which one it was copied from (`newsletter db copy`): one row.
database_identity = Table(
    "database_identity",
    metadata,
    Column("id", Text, primary_key=True),  # random, made the first time a copy needs it
    Column("created_at", Text, nullable=False),
    Column("copy_of", Text),  # the id of the database `newsletter db copy` filled this one from
    Column("copied_at", Text),
)
