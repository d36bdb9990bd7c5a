"""A TCP proxy on loopback that a test or a stress scenario can cut, stall and restore: the network between Patron and a server it talks to (a broker, a database)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, TypeVar

CHUNK = 64 * 1024
T = TypeVar("T")


class _Pair:
    """One client's connection and the proxy's connection to the target for it."""

    def __init__(self, client: asyncio.StreamWriter, target: asyncio.StreamWriter) -> None:
        self.client = client
        self.target = target
        self.pumps: list[asyncio.Task[None]] = []

    def abort(self) -> None:
        # abort(), not close(): the peer sees the connection go at once, buffered bytes and all,
        # as when a cable is pulled or a firewall resets it.
        for writer in (self.client, self.target):
            writer.transport.abort()
        for pump in self.pumps:
            pump.cancel()


class TcpProxy:
    """Listens on 127.0.0.1:<free port> (or `port`) and forwards each connection to target_host:
    target_port. `cut()` drops every live connection at once and refuses new ones; `stall()` keeps
    them open but forwards nothing (a network that silently loses packets); `restore()` undoes either.
    An async context manager; for a program without an event loop of its own, see `running_proxy`."""

    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.host = host
        self.port = port
        # Connections accepted (and forwarded) since start, whether still live or not.
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._pairs: set[_Pair] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._cut = False

    @property
    def live(self) -> int:
        """Connections open through the proxy now."""
        return len(self._pairs)

    @property
    def is_cut(self) -> bool:
        return self._cut

    async def start(self) -> None:
        await self._listen()

    async def stop(self) -> None:
        await self._stop_listening()
        self._drop_all()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)

    async def __aenter__(self) -> TcpProxy:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.stop()

    async def cut(self) -> None:
        """Drop every live connection at once; a new one is refused (connection refused) until restore()."""
        self._cut = True
        await self._stop_listening()
        self._drop_all()

    def stall(self) -> None:
        """Keep every connection open but forward no byte either way until restore()."""
        self._flowing.clear()

    async def restore(self) -> None:
        """Accept and forward again, on the same port."""
        self._flowing.set()
        if self._cut:
            self._cut = False
            await self._listen()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            # Not wait_closed(): since Python 3.12 it waits for every connection the server accepted.
            await asyncio.sleep(0)

    def _drop_all(self) -> None:
        pairs, self._pairs = self._pairs, set()
        for pair in pairs:
            pair.abort()

    def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        handler = asyncio.create_task(self._forward(client_reader, client_writer))
        self._handlers.add(handler)
        handler.add_done_callback(self._handlers.discard)

    async def _forward(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self._cut:
            client_writer.transport.abort()
            return
        try:
            target_reader, target_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            client_writer.transport.abort()
            return
        if self._cut:
            # cut() came while the target was being reached.
            client_writer.transport.abort()
            target_writer.transport.abort()
            return
        self.accepted += 1
        pair = _Pair(client_writer, target_writer)
        self._pairs.add(pair)
        pair.pumps = [
            asyncio.create_task(self._pump(client_reader, target_writer)),
            asyncio.create_task(self._pump(target_reader, client_writer)),
        ]
        # When either side ends, both go: the proxy is a wire, not a half-open socket keeper.
        await asyncio.wait(pair.pumps, return_when=asyncio.FIRST_COMPLETED)
        self._pairs.discard(pair)
        pair.abort()
        await asyncio.gather(*pair.pumps, return_exceptions=True)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(CHUNK):
                await self._flowing.wait()
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass


@contextmanager
def running_proxy(target_host: str, target_port: int, *, port: int = 0) -> Iterator[ProxyThread]:
    """A TcpProxy on its own event loop in a thread, for a program that has no loop (a stress
    scenario driving `patron relay` as a subprocess): its cut(), stall() and restore() block until done."""
    proxy = ProxyThread(target_host, target_port, port=port)
    try:
        yield proxy
    finally:
        proxy.stop()


class ProxyThread:
    """A TcpProxy served by an event loop of its own in a daemon thread."""

    def __init__(self, target_host: str, target_port: int, *, port: int = 0) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._thread.start()
        self.proxy = TcpProxy(target_host, target_port, port=port)
        self._run(self.proxy.start())

    @property
    def port(self) -> int:
        return self.proxy.port

    @property
    def accepted(self) -> int:
        return self.proxy.accepted

    def cut(self) -> None:
        self._run(self.proxy.cut())

    def stall(self) -> None:
        async def stall() -> None:
            self.proxy.stall()

        self._run(stall())

    def restore(self) -> None:
        self._run(self.proxy.restore())

    def stop(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self.proxy.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()
