"""Every exception gqlchannels raises to its users, in one leaf module (it imports nothing of
the package), so catching one never loads the channel-layer stack or the protocols."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError


class ConnectionRejected(Exception):
    """Raised by ``on_connect`` (or returned as False) to refuse ``connection_init``."""

    def __init__(self, message: str = "Forbidden"):
        super().__init__(message)
        self.message = message


class OperationRefused(Exception):
    """Raised by ``on_operation`` (or returned as False) to refuse one operation."""

    def __init__(self, message: str = "Operation refused"):
        super().__init__(message)
        self.message = message


class OperationFailed(Exception):
    """The operation ends with these errors and no result: the protocol's ``error`` message."""

    def __init__(self, errors: list[dict[str, Any]]):
        super().__init__(errors[0]["message"] if errors else "Operation failed")
        self.errors = errors


class BroadcastError(RuntimeError):
    """Publishing failed: no channel layer is configured, or the layer did not take the event
    within ``BROADCAST_TIMEOUT`` (Redis down, say)."""


class LayerMissing(RuntimeError):
    """No channel layer is configured under ``GQLCHANNELS['CHANNEL_LAYER']``."""


class LayerUnavailable(GraphQLError):
    """A subscription could not join its topics: the channel layer did not take the join
    (Redis down, say). The client gets this as the operation's error; it may subscribe again."""

    def __init__(self) -> None:
        super().__init__("Could not subscribe: the channel layer is unavailable")


class SubscriptionOverflow(GraphQLError):
    """A subscription fell more than ``SUBSCRIPTION_BUFFER_SIZE`` events behind.

    It ends with this error (an ``error`` message to its client) rather than skipping events
    silently: the client learns it missed some and can subscribe again and refetch.
    """
