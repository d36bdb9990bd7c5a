"""What the relay asks of a sink (a webhook, a broker; a Kafka sink later): deliver one event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

# delivered: the sink has it. retry: try again later (a timeout, a connection error, 408, 429, 5xx).
# dead: never again (another 4xx): dead-lettered for this sink. disable: the sink asked to be
# disabled (a webhook's 410), or cannot be used as configured (a private address, no secret).
Result = Literal["delivered", "retry", "dead", "disable"]

# What an attempt keeps of the sink's answer (events.md §4).
ANSWER_KEPT = 1024


@dataclass(frozen=True)
class Delivery:
    """One event for one sink: its envelope already written as the sink sends it."""

    event_id: str
    event_name: str
    org_id: int
    # The envelope (events.build.envelope) as JSON, with or without PII as the sink says.
    body: bytes
    # 1 for the first attempt.
    attempt: int


@dataclass(frozen=True)
class Outcome:
    result: Result
    status_code: int | None = None
    error: str | None = None
    # The first ANSWER_KEPT characters of the answer, for the attempt's log.
    answer: str | None = None
    latency_ms: int = 0
    # Seconds the sink asked to wait (Retry-After), when it did.
    retry_after: float | None = None


class Sink(Protocol):
    name: str
    # Whether the sink receives identifiers and names (events.md §1).
    pii: bool

    def subscribes(self, event_name: str) -> bool: ...

    async def deliver(self, delivery: Delivery) -> Outcome:
        """Deliver one event; never raises for a failure of the sink's (that is the Outcome's)."""

    async def close(self) -> None: ...
