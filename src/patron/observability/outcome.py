"""What a request reports of each of its items to the request line and the metrics: typed, as the
services decided it, not read back out of the answer."""

from __future__ import annotations

from dataclasses import dataclass

from patron.codes import Code


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    code: Code
    warnings: tuple[Code, ...] = ()
    user_id: int | None = None
    # The identifiers as answered (masked in the line unless PII logging is on).
    mobile: str | None = None
    email: str | None = None

    @property
    def success(self) -> bool:
        return self.code == Code.ITEM_OK
