"""A sender's attempts and answers for a whole batch in two statements, on PostgreSQL.

Written row by row (one UPDATE per reader, even pipelined), a batch of 500 costs 500 plans and
index descents on the server: recording was most of what the shared queue cost
(benchmarks/bench_senders.py). Here the rows this sender still owns are locked by key first
(`email = ANY(array)`), then the batch travels as arrays, `unnest` turns them into rows and one
UPDATE ... FROM joins them to the table by key. The owner is checked in the first statement
only: in a join, PostgreSQL's estimate for `owner = ...` (its statistics saw every row unowned)
made it scan each owned row once per batch row. SQLite runs in-process, where the per-row
statements cost nothing of the kind (store/deliveries.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Text, and_, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement

from ..statuses import DeliveryStatus
from .clock import database_now
from .schema import deliveries

_d = deliveries


def _rows(*names: str) -> Any:
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


_MINE = (
    select(_d.c.email)
    .where(by_key(func.any(bindparam("a_email", type_=ARRAY(Text)))), _d.c.owner == bindparam("k_owner"))
    .with_for_update()
)


def owned(conn: Connection, key: dict[str, str], emails: Sequence[str]) -> set[str]:
    """Of these addresses, the rows this sender still owns, locked until the commit."""
    return set(conn.execute(_MINE, key | {"a_email": list(emails)}).scalars())


_ATTEMPT_ROWS = _rows("email", "message_id", "papers", "reader")
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
)

_ANSWER_ROWS = _rows("email", "status", "reply")
ANSWERS = (
    update(_d)
    .where(by_key(_ANSWER_ROWS.c.email))
    .values(status=_ANSWER_ROWS.c.status, last_reply=_ANSWER_ROWS.c.reply, updated_at=database_now())
)
# A reader who left mid-run replaces only a row still 'sending': an answer already recorded stays.
WITHDRAWALS = ANSWERS.where(_d.c.status == DeliveryStatus.SENDING.value)


def run(conn: Connection, statement: Any, key: dict[str, str], columns: Mapping[str, Sequence[Any]]) -> None:
    """One statement for the whole batch (rows `owned` locked): `columns` are the arrays, by the
    names `_rows` gave."""
    conn.execute(statement, key | {f"a_{name}": list(values) for name, values in columns.items()})
