"""The machine's process table read from /proc, for bench/ and stress/ (which puts bench/ on its path)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple


class Process(NamedTuple):
    parent: int
    group: int
    ticks: int  # CPU used so far, user and system, in clock ticks
    resident_pages: int
    name: str


def process_table() -> dict[int, Process]:
    """Every process now; one that ends while the table is read is left out."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The name stands in parentheses and may hold spaces and parentheses itself.
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        table[int(entry)] = Process(int(fields[1]), int(fields[2]), int(fields[11]) + int(fields[12]), int(fields[21]), name)
    return table


def tree(table: dict[int, Process], roots: set[int]) -> set[int]:
    """The roots and all their descendants in the table."""
    found, grew = set(roots), True
    while grew:
        more = {pid for pid, process in table.items() if process.parent in found} - found
        found |= more
        grew = bool(more)
    return found
