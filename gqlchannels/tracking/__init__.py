"""Tracking: the live registry of connections and operations, kept off the hot path.

The consumer sends its connection signals with frozen records of what a row needs
(``records``); the receivers (``receivers``, wired by ``connect()``) hand them to the running
loop's tracker, which only records them in memory (``pending``); one flusher task per loop
writes what piled up every ``TRACKING_FLUSH_INTERVAL`` (``flusher``), as one batch
(``batch``) applied in one transaction (``store``) in Django's database thread
(``handover``), with rows built from the records alone (``rows``). Nothing here reads a live
consumer.
"""

from .flusher import Tracker
from .receivers import connect, disconnect, get_tracker, loop_tracker
from .records import ConnectionRecord, OperationRecord, server_id

__all__ = [
    "ConnectionRecord",
    "OperationRecord",
    "Tracker",
    "connect",
    "disconnect",
    "get_tracker",
    "loop_tracker",
    "server_id",
]
