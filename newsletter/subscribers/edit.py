"""An operator's change to one reader's name, keywords or frequency, and what it changed."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import SubscriberError
from ..models import Subscriber
from ..statuses import Frequency
from ..store.subscribers import SubscriberStore
from .rows import new_subscriber


@dataclass(frozen=True)
class Change:
    """One field of one reader, before and after, as the operator reads it."""

    field: str
    old: str
    new: str

    def __str__(self) -> str:
        return f"{self.field} {self.old!r} -> {self.new!r}"


def shown_fields(subscriber: Subscriber) -> dict[str, str]:
    """The fields an operator sets, as they are written in the CSV and on the command line."""
    return {
        "name": subscriber.name,
        "keywords": "; ".join(subscriber.keywords),
        "frequency": subscriber.frequency.value,
    }


def changes_between(before: Subscriber | None, after: Subscriber | None) -> list[Change]:
    """What differs between two states of one reader: what `add --resubscribe` reports."""
    if before is None or after is None:
        return []
    old, new = shown_fields(before), shown_fields(after)
    return [Change(field, old[field], new[field]) for field in old if old[field] != new[field]]


def set_fields(
    store: SubscriberStore,
    email: str,
    *,
    name: str | None = None,
    keywords: str | None = None,
    frequency: Frequency | None = None,
) -> list[Change]:
    """Write the given fields of one reader, only if nobody changed them meanwhile; what changed."""
    current = store.get(email)
    if current is None:
        raise store.not_on_list(email)
    # Typed text is cleaned as `subscribers add` cleans it: one rule for both commands.
    typed = new_subscriber(current.email, name or "", keywords or "")
    wanted = replace(
        current,
        name=typed.name if name is not None else current.name,
        keywords=typed.keywords if keywords is not None else current.keywords,
        frequency=frequency or current.frequency,
    )
    changes = changes_between(current, wanted)
    if not changes:
        return []
    values: dict[str, str | None] = {change.field: change.new for change in changes}
    expect = {change.field: change.old for change in changes}
    if not store.update(email, values, expect=expect):
        raise SubscriberError(
            f"{current.email} changed on {store.name} while this command ran (or left the list)",
            fix="run the command again",
        )
    return changes
