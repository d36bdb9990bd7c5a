"""The names of the events Patron emits (events.md §1): the catalogue docs/events.md samples."""

from __future__ import annotations

from enum import StrEnum


class EventName(StrEnum):
    CUSTOMER_ADDED = "customerAdded"
    CUSTOMER_UPDATED = "customerUpdated"
    POINTS_ISSUED = "pointsIssued"
    REQUEST_UPDATED = "requestUpdated"


EVENT_NAMES: tuple[str, ...] = tuple(name.value for name in EventName)
