"""One object per running event loop: the shape of every per-process cache in gqlchannels.

Objects that hold asyncio primitives (the hub, the tracker) belong to one event loop: tests
run each case in a loop of its own, and servers may start their loop after a fork.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerLoop(Generic[T]):
    """Makes, on first use, and keeps one ``T`` for each event loop."""

    def __init__(self, factory: Callable[[], T]):
        self._factory = factory
        self._objects: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def get(self) -> T:
        """The object of the running loop, made now if it has none."""
        loop = asyncio.get_running_loop()
        with self._lock:
            found = self._objects.get(loop)
            if found is None:
                found = self._objects[loop] = self._factory()
        return found

    def peek(self) -> T | None:
        """The running loop's object if it has one (no lock: cheap enough for every call)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        return self._objects.get(loop)

    def all(self) -> list[T]:
        """Every object kept, whatever its loop is doing (a copy, safe from any thread)."""
        with self._lock:
            return list(self._objects.values())

    def running_loops(self) -> list[asyncio.AbstractEventLoop]:
        """The loops that have an object and are still running."""
        with self._lock:
            return [loop for loop in self._objects if loop.is_running() and not loop.is_closed()]
