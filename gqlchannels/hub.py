"""The per-process hub: fan-out of broadcast events, on one channel of the channel layer.

One hub per running event loop owns one channel-layer channel. Through it arrive broadcast
events (the hub joins each topic's group once, however many local subscriptions listen, and
hands every event to each local subscription's bounded buffer) and messages for the handlers
other modules register (the control plane, ``gqlchannels.control``). So one event costs one
channel-layer message per process, and a layer fault is handled, logged and recovered from
in one place instead of in every consumer.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from . import conf, layer
from .exceptions import LayerUnavailable, SubscriptionOverflow
from .faults import LayerFaults
from .loops import PerLoop
from .metrics import counters
from .sharing import SharedResults

if TYPE_CHECKING:
    from channels.layers import BaseChannelLayer

logger = logging.getLogger("gqlchannels.hub")

#: Handles one channel-layer message of a type another module registered (``Hub.handle``).
MessageHandler = Callable[[dict[str, Any]], None]


class Listener:
    """One subscription's bounded buffer of events between the hub and its resolver.

    Every event comes with the ``SharedResults`` the hub made for it and the time it was
    published, and the event handed out last stays readable (``current_event``,
    ``current_results``, ``current_sent_at``) so a subscription that opted into shared results
    can find them (``gqlchannels.sharing``), and its delivery lag can be measured.
    """

    def __init__(self, groups: tuple[str, ...], size: int):
        self.groups = groups
        self.size = size
        self.overflowed = False
        self.current_event: Any = None
        self.current_results: SharedResults | None = None
        self.current_sent_at: float | None = None
        self._events: deque[tuple[Any, SharedResults, float | None]] = deque()
        self._ready = asyncio.Event()

    def put(self, payload: Any, results: SharedResults, sent_at: float | None = None) -> None:
        """Buffer one event, published at ``sent_at`` (``time.time()``, None if unknown); never
        blocks: the hub feeds every listener in turn. Past ``size`` waiting events the
        listener overflows and takes no more."""
        if self.overflowed:
            return
        if len(self._events) >= self.size:
            self.overflowed = True
            self._events.clear()
            logger.warning("A subscription fell %d events behind and was ended", self.size)
            counters.recorder.overflowed()
        else:
            self._events.append((payload, results, sent_at))
        self._ready.set()

    async def get(self) -> Any:
        """The next event, waiting for one; raise SubscriptionOverflow once overflowed."""
        while not self._events:
            if self.overflowed:
                raise SubscriptionOverflow(
                    f"Subscription ended: it fell more than {self.size} events behind"
                )
            self._ready.clear()
            await self._ready.wait()
        self.current_event, self.current_results, self.current_sent_at = self._events.popleft()
        return self.current_event


class Hub:
    """One process's channel and group memberships: fan-out of events to local listeners.

    Other kinds of messages to this channel go to the handler registered for their type
    (the control plane, ``gqlchannels.control``, registers its own). While anything listens
    or holds the hub, two tasks run: one receives from the layer, the
    other re-joins every group periodically (channels-redis forgets members after
    ``group_expiry``, and everything after a restart without persistence) and, once the layer
    has failed, until it takes the memberships again. Every layer call goes through
    ``faults`` (``gqlchannels.faults``): one retry policy, one backoff, one log of outages.

    The channel lives as long as those tasks: when the hub goes idle it is forgotten, and the
    next use makes a new one. channels-redis' pub/sub layer drops a channel whose receive was
    cancelled (and refuses ``group_add`` to it), so a channel must not outlive its receive.
    """

    def __init__(self, layer: BaseChannelLayer):
        self.layer = layer
        self.channel_name: str | None = None
        self._handlers: dict[str, MessageHandler] = {}
        self._holders: set[object] = set()
        self._listeners: dict[str, set[Listener]] = {}
        #: Groups joined for this channel's handlers (the control group) while it is held.
        self._joined: set[str] = set()
        self._membership = asyncio.Lock()
        self._naming = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._rejoin_now = asyncio.Event()
        self.faults = LayerFaults(on_failure=self._rejoin_now.set)

    def listener_count(self) -> int:
        """How many subscriptions in this process listen to at least one topic."""
        return len({listener for group in self._listeners.values() for listener in group})

    def groups(self) -> list[str]:
        """The groups this process is a member of."""
        return list(self._listeners)

    async def channel(self) -> str:
        """This process's channel name (made on first use, and again after the hub was idle)."""
        async with self._naming:
            if self.channel_name is None:
                self.channel_name = await layer.new_channel(self.layer, "gqlchannels.hub.")
            return self.channel_name

    # -- other subsystems on this channel ------------------------------------------------------

    def handle(self, message_type: str, handler: MessageHandler) -> None:
        """Route messages of ``message_type`` on this channel to ``handler`` (never waits)."""
        self._handlers[message_type] = handler

    def hold(self, holder: object) -> None:
        """Keep receiving while ``holder`` needs this channel (even with nothing to listen to)."""
        self._holders.add(holder)
        self._run()

    def release(self, holder: object) -> None:
        """``holder`` no longer needs the channel."""
        self._holders.discard(holder)
        self._stop_when_idle()

    def joined(self, group: str) -> bool:
        """Whether ``join(group)`` was asked for (and the hub has not gone idle since)."""
        return group in self._joined

    async def join(self, group: str) -> None:
        """Be in ``group`` for this channel's handlers until the hub is idle (a holder must
        hold it). A join the layer refuses is logged by the fault policy and retried with
        every re-join, like a subscription's."""
        if group in self._joined:
            return
        self._joined.add(group)
        channel = await self.channel()
        async with self._membership:
            try:
                await self.faults.call(self.layer, "group_add", group, channel)
            except Exception:  # the re-join task retries it once the layer answers
                logger.debug("Could not join %s yet", group)

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Send one message to another channel, under the hub's fault policy."""
        await self.faults.call(self.layer, "send", channel, message)

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coroutine`` as a task the hub keeps a reference to until it is done."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # -- listeners ---------------------------------------------------------------------------

    async def add(self, groups: tuple[str, ...], size: int) -> Listener:
        """Register a listener on ``groups``, joining each group this process is not yet in;
        raise LayerUnavailable when the layer does not take a join."""
        listener = Listener(groups, size)
        self._run()
        channel = await self.channel()
        async with self._membership:
            self._run()  # the hub may have gone idle while the channel was made
            try:
                for group in groups:
                    if group not in self._listeners:
                        await self.faults.call(self.layer, "group_add", group, channel)
                        self._listeners[group] = set()
                    self._listeners[group].add(listener)
                _raise_swallowed_cancellation()
            except BaseException as exc:
                await self._leave_unused(self._unregister(listener), channel)
                if isinstance(exc, Exception):
                    logger.debug("Refused a subscription to %s: %r", groups, exc)
                    raise LayerUnavailable() from exc
                raise
        return listener

    async def remove(self, listener: Listener) -> None:
        """Unregister ``listener`` at once; leave each group it was the last local listener of.

        Leaving runs in a task of its own and is shielded: it waits for the membership lock
        (busy while Redis takes a join), and a second cancellation of the subscription (a
        disconnect right after ``complete``) must not abandon it half-way.
        """
        emptied = self._unregister(listener)
        channel = self.channel_name  # the hub may go idle now and forget it
        self._stop_when_idle()
        if emptied and channel is not None:
            await asyncio.shield(self.spawn(self._leave_when_unused(emptied, channel)))

    def _unregister(self, listener: Listener) -> list[str]:
        """Take ``listener`` off its groups; return the groups no local listener is left in."""
        emptied = []
        for group in listener.groups:
            members = self._listeners.get(group)
            if members is None or listener not in members:
                continue
            members.discard(listener)
            if not members:
                del self._listeners[group]
                emptied.append(group)
        return emptied

    async def _leave_when_unused(self, groups: list[str], channel: str) -> None:
        async with self._membership:
            await self._leave_unused(groups, channel)

    async def _leave_unused(self, groups: list[str], channel: str) -> None:
        """Take ``channel`` out of each of ``groups`` that nobody re-joined on it meanwhile
        (the lock is held)."""
        for group in groups:
            rejoined = group in self._listeners or group in self._joined
            if not rejoined or channel != self.channel_name:
                await self._leave(group, channel)

    async def _leave(self, group: str, channel: str) -> None:
        try:
            await self.faults.call(self.layer, "group_discard", group, channel)
        except Exception:  # the membership expires on its own; faults has logged the outage
            pass

    # -- the two tasks ---------------------------------------------------------------------

    def _run(self) -> None:
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [
                loop.create_task(self._receive()),
                loop.create_task(self._maintain_membership()),
            ]

    def _stop_when_idle(self) -> None:
        if not self._listeners and not self._holders:
            for task in self._tasks:
                task.cancel()
            self._tasks = []
            channel, self.channel_name = self.channel_name, None
            if self._joined and channel is not None:
                self.spawn(self._leave_when_unused(list(self._joined), channel))
            self._joined.clear()

    async def _receive(self) -> None:
        channel = await self.channel()
        while True:
            try:
                message = await self.faults.call(self.layer, "receive", channel)
            except Exception:
                await self.faults.pause()
                continue
            self._dispatch(message)

    async def _maintain_membership(self) -> None:
        interval = conf.get("GROUP_REJOIN_INTERVAL")
        expiry = layer.group_expiry(self.layer)
        if expiry is not None:  # re-join well before the layer forgets a membership
            interval = min(interval, expiry / 3)
        while True:
            try:
                async with asyncio.timeout(interval):
                    await self._rejoin_now.wait()
            except TimeoutError:
                pass
            self._rejoin_now.clear()
            while not await self._rejoin_all():
                await self.faults.pause()

    async def _rejoin_all(self) -> bool:
        """Join every group again (refreshing its expiry); False if the layer failed."""
        async with self._membership:
            try:
                for group in [*self._listeners, *self._joined]:
                    await self.faults.call(self.layer, "group_add", group, self.channel_name)
            except Exception:
                return False
        return True

    # -- messages --------------------------------------------------------------------------

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == layer.EVENT_TYPE:
            payload, results = message.get("payload"), SharedResults()
            sent_at = message.get("sent_at")
            if not isinstance(sent_at, float):  # a publisher from before sent_at existed
                sent_at = None
            for listener in self._listeners.get(message.get("group"), ()):  # type: ignore[arg-type]
                listener.put(payload, results, sent_at)
        elif isinstance(kind, str) and kind in self._handlers:
            self._handlers[kind](message)


def _raise_swallowed_cancellation() -> None:
    """Deliver a cancellation that layer I/O swallowed.

    redis-py 8 wraps socket writes in ``asyncio.wait_for``, which on Python 3.11 drops a
    cancellation arriving just as the write completes; the subscription of a client that
    left would then wait for events forever. A task asked to stop stops here instead.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _new_hub() -> Hub:
    layer.serving()  # this loop serves WebSockets: sync publishers run their calls on it
    return Hub(layer.channel_layer())


_hubs: PerLoop[Hub] = PerLoop(_new_hub)


def get_hub() -> Hub:
    """The hub of the running event loop (each loop, e.g. each test or forked worker, has one)."""
    return _hubs.get()
