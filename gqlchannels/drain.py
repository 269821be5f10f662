"""Graceful drain: when the server is told to stop, every connection closes with 1012.

Servers stop in ways an application cannot rely on: Daphne cancels every application and
sends no close frame (clients see 1006, and nothing tells them to reconnect elsewhere);
uvicorn closes every socket at the same instant (so every client reconnects as one herd).

So the first connection a process accepts in its main thread chains a handler in front of
the server's own SIGTERM and SIGINT handlers. On the signal, this module closes the
process's connections with 1012 (Service Restart), spread evenly over ``DRAIN_WINDOW``
seconds; each connection's teardown runs (every operation cancelled and its ``finally``
awaited); the drain hooks run (tracking deletes this process's registry rows); and only
then is the server's own handler called, so the server stops exactly as it would have. A
second signal during the drain calls the server's handler at once.

A server that stops without a signal we saw (it cancels the application: Daphne's
shutdown, or a signal handled elsewhere) gets the same answer per connection, at once: the
consumer closes with 1012 when it is cancelled with its socket still open, and the last
connection to go runs the drain hooks.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from . import conf
from .loops import PerLoop

logger = logging.getLogger("gqlchannels.drain")

#: Signals a process manager sends to stop a server.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: Seconds the drain waits, after the last close, for teardowns and hooks before it lets the
#: server stop anyway.
SETTLE_TIMEOUT = 10.0


class Drainable(Protocol):
    """What the drain needs of a live connection."""

    async def server_stopping(self) -> None:
        """Close with 1012 (the teardown follows, as for any close)."""


DrainHook = Callable[[], Awaitable[None]]
_hooks: list[DrainHook] = []


def on_drained(hook: DrainHook) -> None:
    """Run ``hook`` once a stopping loop has no connection left (before the server stops).

    Tracking registers its final flush here, so a stopped process leaves no registry rows.
    """
    if hook not in _hooks:
        _hooks.append(hook)


class LoopDrain:
    """The live connections of one event loop, and whether the loop's server is stopping."""

    def __init__(self) -> None:
        self.connections: dict[Drainable, None] = {}
        #: Set by the signal drain only: connections accepted from now on close with 1012.
        self.stopping = False
        #: Run the hooks once no connection is left (a connection the server cancelled sets
        #: it: Daphne's shutdown without our signal handler looks just like that).
        self.hooks_due = False
        self._empty = asyncio.Event()
        self._hooks_done: asyncio.Task[None] | None = None

    def joined(self, connection: Drainable) -> None:
        """A connection was accepted."""
        self.connections[connection] = None
        self._empty.clear()

    async def left(self, connection: Drainable) -> None:
        """A connection has been torn down; the last one of a stopping loop runs the hooks."""
        self.connections.pop(connection, None)
        if self.connections:
            return
        self._empty.set()
        if self.stopping or self.hooks_due:
            self.hooks_due = False
            await self.run_hooks()

    async def run_hooks(self) -> None:
        """Run every drain hook (callers meanwhile wait for the run under way)."""
        if self._hooks_done is None:
            self._hooks_done = asyncio.get_running_loop().create_task(_run_hooks())
        running = self._hooks_done
        try:
            await asyncio.shield(running)
        finally:
            if running.done() and self._hooks_done is running:
                self._hooks_done = None

    async def drain(self, window: float) -> None:
        """Close every connection with 1012, spread over ``window`` seconds, then wait (bounded)
        until each has been torn down and the hooks have run."""
        self.stopping = True
        connections = list(self.connections)
        logger.info("Draining %d connection(s) over %ss", len(connections), window)
        step = window / len(connections) if connections else 0.0
        for index, connection in enumerate(connections):
            if index:
                await asyncio.sleep(step)
            await connection.server_stopping()
        try:
            async with asyncio.timeout(SETTLE_TIMEOUT):
                await self._empty.wait()
                await self.run_hooks()
        except TimeoutError:
            logger.warning(
                "%d connection(s) not torn down %ss after the drain",
                len(self.connections),
                SETTLE_TIMEOUT,
            )


async def _run_hooks() -> None:
    for hook in list(_hooks):
        try:
            await hook()
        except Exception:
            logger.exception("A drain hook failed")


_drains: PerLoop[LoopDrain] = PerLoop(LoopDrain)


def get_drain() -> LoopDrain:
    """The drain state of the running event loop."""
    return _drains.get()


def watch(connection: Drainable) -> LoopDrain:
    """Register an accepted connection, and chain the signal handlers on first use."""
    drain = get_drain()
    drain.joined(connection)
    _signals.install(asyncio.get_running_loop())
    return drain


class SignalChain:
    """This process's handler in front of the server's own, for each stop signal.

    Installed from the loop that runs in the main thread (where Python delivers signals and
    where Daphne and uvicorn run their loop); the server's handler is kept and called once
    the drain is over, so its own shutdown runs unchanged.
    """

    def __init__(self) -> None:
        self.previous: dict[int, Any] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.draining: asyncio.Task[None] | None = None

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Chain our handler for ``loop`` (once per loop, main thread only)."""
        if self.loop is loop or threading.current_thread() is not threading.main_thread():
            return
        self.loop, self.draining = loop, None
        for signum in STOP_SIGNALS:
            previous = signal.getsignal(signum)
            if previous in (signal.SIG_IGN, None) or previous == self.handle:
                continue
            self.previous[signum] = previous
            signal.signal(signum, self.handle)

    def handle(self, signum: int, frame: Any) -> None:
        """The signal handler: start the drain on the loop (a second signal passes on)."""
        loop = self.loop
        if loop is None or loop.is_closed() or not loop.is_running():
            self.pass_on(signum, frame)
            return
        loop.call_soon_threadsafe(self._start, signum)

    def _start(self, signum: int) -> None:
        drain = _drains.peek()
        if self.draining is not None or drain is None:
            self.pass_on(signum, None)
            return
        self.draining = asyncio.get_running_loop().create_task(self._drain_then_stop(drain, signum))

    async def _drain_then_stop(self, drain: LoopDrain, signum: int) -> None:
        try:
            await drain.drain(conf.get("DRAIN_WINDOW"))
        finally:
            self.pass_on(signum, None)

    def pass_on(self, signum: int, frame: Any) -> None:
        """Give the signal to the handler that was there before ours."""
        previous = self.previous.get(signum, signal.SIG_DFL)
        if callable(previous):
            previous(signum, frame)
            return
        signal.signal(signum, previous)
        signal.raise_signal(signum)


_signals = SignalChain()
