"""The `patron` command run in process against a database, as an operator runs it."""

from __future__ import annotations

import asyncio

from click.testing import CliRunner, Result


class Patron:
    """`patron ARGS...` against one database; from an async test, `await patron.in_thread(ARGS...)`."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    def __call__(self, *args: str) -> Result:
        from patron.cli import main

        return CliRunner().invoke(main, list(args), env={"PATRON_DATABASE_URL": self.database_url}, catch_exceptions=False)

    async def in_thread(self, *args: str) -> Result:
        """The command runs its own event loop (and engine), so from a running loop in a thread of its own."""
        return await asyncio.to_thread(self, *args)
