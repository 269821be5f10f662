"""Shared subscription results: one execution per event for every subscription that asked
the same thing.

A subscription that listens with ``listen(info, topic, shared=True)`` promises that its result
depends only on the event, the document, the operation name and the variables, not on who is
asking (its context). Then, when one event reaches many such subscriptions in this process, the
first executes the selection set and encodes the result; the others reuse that encoded result.

The hub attaches one ``SharedResults`` to every event it hands out. ``listen`` offers its
listener to the operation's scope (``gqlchannels.operation_scope``); the executor asks that
scope for the event's ``SharedResults`` and gets them only when the event it is about to
execute is the very object that listener handed out last. Anything else (a subscription that
did not opt in, a resolver that transformed or buffered the event) is executed on its own, as
usual.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class SharedResults:
    """The results computed for one event, by operation key (query, operation, variables)."""

    __slots__ = ("_results",)

    def __init__(self) -> None:
        self._results: dict[Hashable, asyncio.Future[Any]] = {}

    async def get(self, key: Hashable, compute: Callable[[], T | Awaitable[T]]) -> T:
        """The result for ``key``: computed by the first caller, awaited by the others.

        ``compute`` returns a value or an awaitable; a value is stored at once, so when every
        resolver is synchronous no task is made. A caller cancelled while the shared
        computation runs does not cancel it for the others.
        """
        future = self._results.get(key)
        if future is None:
            outcome = compute()
            if inspect.isawaitable(outcome):
                future = asyncio.ensure_future(outcome)
            else:
                future = asyncio.get_running_loop().create_future()
                future.set_result(outcome)
            self._results[key] = future
        return await asyncio.shield(future)


class SharingSource(Protocol):
    """What an operation scope reads from a listener that opted in."""

    current_event: Any
    current_results: SharedResults | None
