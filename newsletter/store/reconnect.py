"""A sender rides out a PostgreSQL restart or failover, or a deadlock with another sender: the
transaction is run again, for a while.

Only work that is safe to do twice is wrapped (a claim, a batch of attempts or answers, giving rows
back): each is one transaction, and a connection lost before its COMMIT's answer kept either all of
it or nothing. The one case where the answer of a COMMIT that did succeed was lost, a claim, leaves
rows this sender owns and never saw; `SendQueue.return_unseen` gives those back before the sender
decides it is done.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from ..errors import StoreError
from .database import Database

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


class HasDatabase(Protocol):
    @property
    def db(self) -> Database: ...


S = TypeVar("S", bound=HasDatabase)


def reconnecting(work: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Run a method's transaction again while the server is away, up to `db.patience` seconds."""

    @functools.wraps(work)
    def again(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        deadline: float | None = None
        pause = 0.2
        while True:
            try:
                return work(self, *args, **kwargs)
            except StoreError as exc:
                if not exc.transient:
                    raise
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.db.patience
                    if not exc.conflict:
                        log.warning("%s: trying again for %.0f s", exc.message, self.db.patience)
                if exc.conflict:  # another sender's transaction won: go again soon, out of its step
                    time.sleep(random.uniform(0.01, 0.1))
                    continue
                if now >= deadline:
                    raise StoreError(
                        f"{exc.what} for {self.db.patience:.0f} s",
                        where=exc.where,
                        fix=(exc.fix or "check that the server is running")
                        + "; run the same command again afterwards: it resumes",
                    ) from exc
                time.sleep(min(pause, max(deadline - now, 0.0)))
                pause = min(pause * 2, 5.0)

    return again
