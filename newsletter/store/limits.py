"""Rate-limit counters in the database: every `serve` process shares them, and a restart keeps them.

Fixed windows: a hit is one upsert on (key, window start) that adds one only while the window is
under its limit, so two processes can never both take the last allowed hit. A hit that opens a
new window also deletes the windows older than `KEPT_FOR` (an index range, in its own short
transaction), so the table holds at most a day of keys.
"""

from __future__ import annotations

from sqlalchemy import delete

from .database import Database
from .schema import rate_limits

KEPT_FOR = 24 * 3600  # seconds: the longest window a limit may have, and how long rows are kept


def count_hit(db: Database, key: str, limit: int, window: int, now: float) -> bool:
    """Count one hit on `key` if its current window is under `limit`; False (not counted) if not."""
    if not 0 < window <= KEPT_FOR:
        raise ValueError(f"a rate-limit window is 1 to {KEPT_FOR} seconds, not {window}")
    if limit < 1:
        return False
    start = int(now) // window * window
    counted = (
        db.insert(rate_limits)
        .values(key=key, window_start=start, hits=1)
        .on_conflict_do_update(
            index_elements=[rate_limits.c.key, rate_limits.c.window_start],
            set_={"hits": rate_limits.c.hits + 1},
            where=rate_limits.c.hits < limit,
        )
        .returning(rate_limits.c.hits)
    )
    with db.write() as conn:
        hits = conn.execute(counted).scalar()
    if hits == 1:
        prune(db, now)
    return hits is not None


def prune(db: Database, now: float) -> int:
    """Forget the windows no limit can still be counting: how many rows went."""
    with db.write() as conn:
        gone = conn.execute(delete(rate_limits).where(rate_limits.c.window_start < int(now) - KEPT_FOR))
    return int(gone.rowcount or 0)
