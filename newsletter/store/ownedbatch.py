"""A sender's attempts and answers for a whole batch in one statement each, on PostgreSQL.

Written row by row (one UPDATE per reader, even pipelined), a batch of 500 costs 500 plans and
index descents on the server: recording was most of what the shared queue cost
(benchmarks/bench_senders.py). Here the batch travels as arrays, `unnest` turns them into rows and
one UPDATE ... FROM joins them to the table by key, writing only rows this sender still owns and
returning them. Each transaction first tells the planner that a batch's rows are lookups by key
(`by_key_plans`): with its defaults it hashed the whole table per batch, or, with statistics that
saw every row unowned, scanned each owned row once per batch row. SQLite runs in-process, where the
per-row statements cost nothing of the kind (store/deliveries.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Text, and_, bindparam, func, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from ..statuses import DeliveryStatus
from .clock import database_now
from .schema import deliveries

_d = deliveries


def rows(*names: str) -> Any:
    """The batch as a table `v(names...)`: one array parameter per column."""
    arrays = (bindparam(f"a_{name}", type_=ARRAY(Text)) for name in names)
    return func.unnest(*arrays).table_valued(*names).render_derived(name="v")


def by_key(email: Any) -> ColumnElement[bool]:
    """One delivery row of the run's (issue, list, channel), by these parameters and `email`."""
    return and_(
        _d.c.issue == bindparam("k_issue"),
        _d.c.list == bindparam("k_list"),
        _d.c.channel == bindparam("k_channel"),
        _d.c.email == email,
    )


def by_key_plans(conn: Connection, *, no_scans: bool = False) -> None:
    """For the rest of this transaction, plan a batch's rows as what they are: a few hundred
    lookups by key in pages the server has cached. With the default cost of a random page (4, a
    spinning disk's), PostgreSQL chose to scan the whole table and hash it for every batch of 500,
    which made a send's queue cost grow with the square of the list. `no_scans` for a claim: its
    pick of free rows is a LIMIT, which PostgreSQL expects a scan from the table's start to meet
    soon, while the claimed rows are those at the start (10,000 readers: 1.8 ms per claim of 32).
    Local settings end with the transaction, and work through a pooler in transaction mode, where
    startup options do not."""
    scans = "off" if no_scans else "on"
    conn.exec_driver_sql(
        f"SELECT set_config('random_page_cost', '1.1', true), set_config('enable_seqscan', '{scans}', true)"
    )


_OWNER: BindParameter[str] = bindparam("k_owner")
_ATTEMPT_ROWS = rows("email", "message_id", "papers", "reader")
ATTEMPTS = (
    update(_d)
    .where(by_key(_ATTEMPT_ROWS.c.email))
    .values(
        status=DeliveryStatus.SENDING.value,
        attempts=_d.c.attempts + 1,
        message_id=_ATTEMPT_ROWS.c.message_id,
        papers=_ATTEMPT_ROWS.c.papers,
        reader=_ATTEMPT_ROWS.c.reader,
        updated_at=database_now(),
    )
    .where(_d.c.owner == _OWNER)
    .returning(_d.c.email)
)

_ANSWER_ROWS = rows("email", "status", "reply")
ANSWERS = (
    update(_d)
    .where(by_key(_ANSWER_ROWS.c.email))
    .values(status=_ANSWER_ROWS.c.status, last_reply=_ANSWER_ROWS.c.reply, updated_at=database_now())
    .where(_d.c.owner == _OWNER)
    .returning(_d.c.email)
)
# A reader who left mid-run replaces only a row still 'sending': an answer already recorded stays.
WITHDRAWALS = ANSWERS.where(_d.c.status == DeliveryStatus.SENDING.value)


def run(
    conn: Connection, statement: Any, key: dict[str, str], columns: Mapping[str, Sequence[Any]]
) -> set[str]:
    """One statement for the whole batch, `columns` its arrays by the names `rows` gave: the
    addresses written, those of rows this sender still owns (each locked until the commit)."""
    by_key_plans(conn)
    return set(
        conn.execute(
            statement, key | {f"a_{name}": list(values) for name, values in columns.items()}
        ).scalars()
    )
