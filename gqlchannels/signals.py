"""Signals of a connection's life, for tracking, metrics and audit logs.

Receivers run on the event loop, in the consumer's task: they must not block (queue the work
and return). ``sender`` is the consumer class; ``consumer`` the instance.
"""

from django.dispatch import Signal

#: A socket was accepted with a supported subprotocol. Arguments: ``consumer``.
connection_opened = Signal()
#: The socket closed and every operation has finished. Arguments: ``consumer``.
connection_closed = Signal()
#: An operation was admitted. Arguments: ``consumer``, ``operation_id``, ``request``, ``context``.
operation_started = Signal()
#: An operation ended, however it ended. Arguments: ``consumer``, ``operation_id``.
operation_finished = Signal()
