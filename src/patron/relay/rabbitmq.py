"""The RabbitMQ sink (events.md §3): an org's [[brokers]] entry, each event published persistent to its topic exchange and counted delivered only when the broker confirms it."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

import aio_pika
import aiormq
import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from pamqp.commands import Basic
from yarl import URL

from patron import __version__
from patron.orgs.policy import Broker
from patron.relay.sinks import Delivery, Outcome

# events.md §3: an attempt that is not confirmed within this is a timeout, retried.
ATTEMPT_TIMEOUT = 15.0
DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671}
# After a connection could not be opened, deliveries are answered "retry" at once, without a new
# attempt, for FIRST_BACKOFF seconds, doubling with each failure up to LAST_BACKOFF: a broker that is
# down is not knocked on by every one of a hundred concurrent deliveries.
FIRST_BACKOFF = 1.0
LAST_BACKOFF = 30.0


class UrlProblem(ValueError):
    """The environment variable named by url_env holds no usable AMQP URL: its message names the
    variable, never its value."""


# --- rules: pure functions -----------------------------------------------------------------------


def routing_key(delivery: Delivery) -> str:
    """`<orgId>.<eventName>`: a consumer binds `42.*` for one org, `*.customerAdded` for one event."""
    return f"{delivery.org_id}.{delivery.event_name}"


def broker_url(value: str | None, env_name: str) -> URL:
    """The AMQP URL in the url_env variable's value."""
    variable = f"the environment variable {env_name} (url_env)"
    if value is None or not value.strip():
        raise UrlProblem(
            f"{variable} is not set or empty: it holds the broker's AMQP URL, amqp://user:password@host:5672/vhost"
        )
    try:
        url = URL(value.strip())
        port = url.port
    except (ValueError, TypeError):
        # The parser's own message is dropped (from None): it may quote the URL and its password.
        raise UrlProblem(f"{variable} does not hold a URL: it holds the broker's AMQP URL, amqp://user:password@host:5672/vhost") from None
    if url.scheme not in DEFAULT_PORTS:
        shown = f"{url.scheme}://" if url.scheme and url.scheme.isalnum() else "no scheme"
        raise UrlProblem(f"{variable} holds a URL with {shown}: a broker's URL is amqp:// or amqps://")
    if not url.host:
        raise UrlProblem(f"{variable} holds an AMQP URL without a host")
    if port is not None and not 0 < port < 65536:
        raise UrlProblem(f"{variable} holds an AMQP URL whose port is not 1 to 65535")
    return url


def backoff(failures: int, first: float = FIRST_BACKOFF, last: float = LAST_BACKOFF) -> float:
    """How long after its `failures`-th failure in a row no new connection is attempted."""
    return min(last, first * 2.0 ** max(0, failures - 1))


def where(url: URL) -> str:
    """The broker as an error names it: user, host, port and vhost, never the password."""
    user = f"{url.user}@" if url.user else ""
    port = url.port or DEFAULT_PORTS.get(url.scheme, 5672)
    return f"{url.scheme}://{user}{url.host}:{port} (vhost {vhost_of(url)})"


def vhost_of(url: URL) -> str:
    # As aiormq reads it: the path after its first slash, "/" when there is none.
    return url.path[1:] if url.path not in ("", "/") else "/"


def without_secret(text: str, url: URL) -> str:
    """`text` (a library's or the broker's message) with the URL's password taken out, in whatever
    form the library may have quoted it."""
    password = url.password
    if not password:
        return text
    for form in sorted({password, quote(password, safe=""), url.raw_password or ""}, key=len, reverse=True):
        if form:
            text = text.replace(form, "***")
    return text


def why_not_connected(failed: BaseException, url: URL) -> str:
    """What a failure to open the connection, the channel or the exchange, or the loss of one of them,
    says to an operator; the library's own words never carry the URL's password."""
    said = without_secret(_said(failed), url)
    if isinstance(failed, aiormq.exceptions.ProbableAuthenticationError):
        return "the broker closed the connection while logging in: the user or password is wrong, or the user may not use the vhost"
    if isinstance(failed, aiormq.exceptions.AuthenticationError):
        return "the broker and Patron share no login mechanism (Patron logs in with PLAIN)"
    if isinstance(failed, aiormq.exceptions.InvalidFrameError) and "Connection.OpenOk" in said:
        # aiormq drops the broker's reply here; RabbitMQ closes at this step for one reason.
        return f"the broker refused to open the vhost {vhost_of(url)}: it does not exist, or the user may not use it"
    if isinstance(failed, aiormq.exceptions.ChannelPreconditionFailed):
        return (
            f"the exchange exists with other settings than a durable topic exchange ({said}): "
            "delete it on the broker, or name another exchange in the org file"
        )
    if isinstance(failed, aiormq.exceptions.ChannelAccessRefused):
        return f"the broker refused the user access: {said}"
    if isinstance(failed, aiormq.exceptions.ChannelInvalidStateError):
        return "the channel was closed"
    if isinstance(failed, aiormq.exceptions.ConnectionNotAllowed):
        return f"the broker refused the connection: {said}"
    if isinstance(failed, aiormq.exceptions.AMQPConnectionError):
        # aiormq gives a socket's failure to connect as (errno, text).
        if failed.args and isinstance(failed.args[0], int):
            return f"cannot connect: {said}"
        return f"the connection was closed: {said}"
    if isinstance(failed, aiormq.exceptions.ChannelClosed):
        return f"the broker closed the channel: {said}"
    if isinstance(failed, aiormq.exceptions.AMQPError):
        return f"the broker answered: {said}"
    if isinstance(failed, TimeoutError):
        return "the broker did not answer in time"
    if isinstance(failed, OSError):
        return f"cannot connect: {failed.strerror or said}"
    return f"{type(failed).__name__}: {said}"


def _said(failed: BaseException) -> str:
    """The broker's reply text, as aiormq carries it (a closing frame among the args), or the
    exception's own words."""
    for arg in failed.args:
        reply = getattr(arg, "reply_text", None)
        if reply:
            return str(reply)
    return " ".join(str(arg) for arg in failed.args if isinstance(arg, str)) or type(failed).__name__


# --- the edge: one connection, one confirming channel --------------------------------------------


@dataclass(frozen=True)
class _Link:
    connection: AbstractConnection
    channel: AbstractChannel
    exchange: AbstractExchange

    @property
    def open(self) -> bool:
        return not (self.connection.is_closed or self.channel.is_closed)


class _NotConnected(Exception):
    """No connection now: the message says why (never with the password)."""


class RabbitMqSink:
    """One [[brokers]] entry of kind "rabbitmq" as the relay's Sink: one connection, opened on the
    first delivery and again after it is lost, with one channel in confirm mode that every
    concurrent delivery publishes on (the broker confirms them out of one stream of delivery tags)."""

    def __init__(
        self,
        broker: Broker,
        environ: Mapping[str, str] | None = None,
        *,
        timeout: float = ATTEMPT_TIMEOUT,
        first_backoff: float = FIRST_BACKOFF,
        last_backoff: float = LAST_BACKOFF,
    ) -> None:
        """`environ` is where url_env is read (os.environ by default)."""
        self.name = broker.name
        self.pii = broker.pii
        self._broker = broker
        self._timeout = timeout
        self._first_backoff = first_backoff
        self._last_backoff = last_backoff
        self._problem: str | None = None
        self._url = _Url(URL())
        try:
            self._url = _Url(broker_url((os.environ if environ is None else environ).get(broker.url_env), broker.url_env))
        except UrlProblem as problem:
            self._problem = f"broker {broker.name}: {problem}"
        self._link: _Link | None = None
        self._opening: asyncio.Task[_Link] | None = None
        self._failures = 0
        self._last_failure = ""
        self._next_attempt = 0.0
        self._closed = False
        # Connections dropped while deliveries may still hold them, closed in the background.
        self._retiring: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        shown = where(self._url.url) if self._problem is None else "?"
        return f"RabbitMqSink(name={self.name!r}, broker={shown!r}, exchange={self._broker.exchange!r}, url_env={self._broker.url_env!r})"

    def subscribes(self, event_name: str) -> bool:
        return self._broker.subscribes(event_name)

    async def deliver(self, delivery: Delivery) -> Outcome:
        if self._problem is not None:
            return Outcome("disable", error=self._problem)
        started = time.perf_counter()
        message = aio_pika.Message(
            delivery.body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=delivery.event_id,
            # AMQP's own field for the kind of message: a consumer can tell events apart without the body.
            type=delivery.event_name,
            app_id="patron",
        )
        link: _Link | None = None
        try:
            async with asyncio.timeout(self._timeout):
                link = await self._connected()
                confirmed = await link.exchange.publish(message, routing_key(delivery), mandatory=False)
        except _NotConnected as not_connected:
            return Outcome("retry", error=str(not_connected), latency_ms=_since(started))
        except TimeoutError:
            if link is None:
                error = f"broker {self.name}: {where(self._url.url)}: no connection within {self._timeout:g} s"
            else:
                error = f"the broker had not confirmed the message within {self._timeout:g} s"
            return Outcome("retry", error=error, latency_ms=_since(started))
        except aiormq.exceptions.DeliveryError as refused:
            # A nack (or a return): the broker did not take the message, e.g. a queue's process failed.
            error = f"the broker did not confirm the message ({refused.frame.name})"
            return Outcome("retry", error=error, latency_ms=_since(started))
        except (aiormq.exceptions.AMQPError, aiormq.exceptions.ChannelInvalidStateError, ConnectionError, OSError) as lost:
            # The connection or the channel went while the message was in flight: the broker may or
            # may not have it, so it is sent again (at least once; eventId lets the consumer tell).
            error = f"the connection to the broker was lost before the message was confirmed: {why_not_connected(lost, self._url.url)}"
            return Outcome("retry", error=error, latency_ms=_since(started))
        if not isinstance(confirmed, Basic.Ack):
            # Publishing with mandatory=False never gets a message returned; anything but an ack is
            # not a confirm, and an event is delivered only when confirmed.
            return Outcome("retry", error=f"the broker answered {type(confirmed).__name__}, not a confirm", latency_ms=_since(started))
        return Outcome("delivered", latency_ms=_since(started))

    async def close(self) -> None:
        self._closed = True
        if self._opening is not None:
            self._opening.cancel()
            await asyncio.wait({self._opening})
        link, self._link = self._link, None
        if link is not None:
            await _close_quietly(link.connection)
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)

    async def _connected(self) -> _Link:
        """The open link; opened now if there is none (one attempt shared by every delivery waiting
        for it), unless the last attempt failed less than its backoff ago."""
        if self._closed:
            raise _NotConnected(f"broker {self.name}: the sink is closed")
        link = self._link
        if link is not None and link.open:
            return link
        if self._opening is None:
            if link is not None:
                self._link = None
                self._retire(link)
            wait = self._next_attempt - time.monotonic()
            if wait > 0:
                raise _NotConnected(f"{self._last_failure} (next attempt in {wait:.1f} s)")
            self._opening = asyncio.create_task(self._open(), name=f"patron broker {self.name}: connect")
            self._opening.add_done_callback(self._opened)
        opening = self._opening
        try:
            # Shielded: one delivery's timeout or cancellation does not stop the attempt the others await.
            return await asyncio.shield(opening)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if opening.cancelled() and current is not None and not current.cancelling():
                # close() stopped the attempt; this delivery itself was not cancelled.
                raise _NotConnected(f"broker {self.name}: the sink is closed") from None
            raise

    async def _open(self) -> _Link:
        url = self._url.url
        connection: AbstractConnection | None = None
        try:
            async with asyncio.timeout(self._timeout):
                connection = await aio_pika.connect(
                    url,
                    client_properties={"connection_name": f"Patron {__version__} relay, broker {self.name}"},
                )
                channel = await connection.channel(publisher_confirms=True)
                exchange = await channel.declare_exchange(self._broker.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        except asyncio.CancelledError:
            if connection is not None:
                await _close_quietly(connection)
            raise
        except Exception as failed:
            if connection is not None:
                await _close_quietly(connection)
            raise _NotConnected(f"broker {self.name}: {where(url)}: {why_not_connected(failed, url)}") from None
        return _Link(connection, channel, exchange)

    def _opened(self, opening: asyncio.Task[_Link]) -> None:
        self._opening = None
        if opening.cancelled():
            return
        failed = opening.exception()
        if failed is None:
            self._failures = 0
            self._link = opening.result()
            if self._closed:
                self._retire(self._link)
                self._link = None
            return
        self._failures += 1
        self._last_failure = str(failed)
        self._next_attempt = time.monotonic() + backoff(self._failures, self._first_backoff, self._last_backoff)

    def _retire(self, link: _Link) -> None:
        task = asyncio.create_task(_close_quietly(link.connection))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)


class _Url:
    """The broker's URL, kept out of every repr, log and traceback's locals display."""

    __slots__ = ("url",)

    def __init__(self, url: URL) -> None:
        self.url = url

    def __repr__(self) -> str:
        return "<a broker's AMQP URL>"


async def _close_quietly(connection: AbstractConnection) -> None:
    try:
        await asyncio.wait_for(connection.close(), 5.0)
    except Exception:
        pass  # it is being dropped: the broker closes its side when the socket goes


def _since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
