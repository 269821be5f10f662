"""How many results an operation has sent: one integer, bumped on the send path, read by the
live registry at its flushes.

The protocol makes one ``Delivered`` per operation and increments it once per result frame,
nothing else per event; the operation's record carries the same object, so the registry's
flusher (in the same event loop) samples the count every ``TRACKING_FLUSH_INTERVAL``, dates
the last change, and writes both with the heartbeat.
"""

from __future__ import annotations


class Delivered:
    """The count of one operation's result frames (``next`` / legacy ``data``)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def __repr__(self) -> str:
        return f"Delivered({self.count})"
