"""Signals of a connection's life, for tracking, metrics and audit logs.

Receivers run on the event loop, in the consumer's task: they must not block (queue the work
and return). ``sender`` is the consumer class; ``consumer`` the instance. ``record`` is a
frozen snapshot taken when the event happened (``gqlchannels.tracking.ConnectionRecord`` /
``OperationRecord``): read it, rather than the live consumer, for anything kept for later.
"""

import logging
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger("gqlchannels.signals")

#: A socket was accepted with a supported subprotocol. Arguments: ``consumer``, ``record``
#: (a ConnectionRecord).
connection_opened = Signal()
#: The connection's user was replaced after it opened (``on_connect`` set ``scope["user"]``).
#: Arguments: ``consumer``, ``record`` (the ConnectionRecord with the new user).
connection_updated = Signal()
#: The socket closed and every operation has finished. Arguments: ``consumer``,
#: ``connection_id``.
connection_closed = Signal()
#: An operation was admitted. Arguments: ``consumer``, ``operation_id``, ``request``,
#: ``context``, ``record`` (an OperationRecord).
operation_started = Signal()
#: A running operation listens to new topics (``gqlchannels.listen``). Arguments:
#: ``consumer``, ``connection_id``, ``operation_id``, ``topics`` (a frozenset of all its
#: topics so far).
operation_topics = Signal()
#: An operation ended, however it ended. Arguments: ``consumer``, ``connection_id``,
#: ``operation_id``.
operation_finished = Signal()


def send_robust(signal: Signal, sender: type, **named: Any) -> None:
    """Send ``signal``; a receiver that raises is logged and does not stop the others."""
    for receiver, response in signal.send_robust(sender=sender, **named):
        if isinstance(response, Exception):
            logger.error("Receiver %r of %s raised", receiver, signal, exc_info=response)
