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


# -- raised by the test client, gqlchannels.testing --------------------------------------


class GraphQLWSError(Exception):
    """Base of every error the communicator raises, so a test can catch them in one clause."""


class ProtocolError(GraphQLWSError):
    """The server sent something the protocol does not allow at this point.

    This is a server bug (or a test that drives the socket by hand alongside the helper), so
    it is raised rather than skipped: silently ignoring it would hide the bug under test.
    """


class ConnectionClosed(GraphQLWSError):
    """The server closed the WebSocket while the test was waiting for a frame.

    ``code`` and ``reason`` are those of the close frame, so a test can assert on them
    (``code`` is None when the application ended without sending a close frame).
    """

    def __init__(self, code: int | None, reason: str = ""):
        self.code = code
        self.reason = reason
        detail = f"code {code}" if code is not None else "no close code"
        super().__init__(
            f"The server closed the connection ({detail}{': ' + reason if reason else ''})"
        )


class ConnectionRefused(ConnectionClosed):
    """The server did not acknowledge ``connection_init`` (or refused the socket itself).

    Raised by ``async with communicator`` so that a test of authentication can write
    ``with pytest.raises(ConnectionRefused) as refused`` and then check ``refused.value.code``.
    ``payload`` is the legacy ``connection_error`` payload when the server sent one.
    """

    def __init__(self, code: int | None, reason: str = "", payload: Any = None):
        super().__init__(code, reason)
        self.payload = payload


class HandshakeRefused(ConnectionRefused):
    """The application closed the socket before accepting it: a real server answers that
    with HTTP 403, so there is no close code (``code`` is None).

    Its own class and message because the usual cause is the origin check (a test's Origin
    not in ``ALLOWED_HOSTS``), and "code 1000", what Channels' communicator reports for it,
    sends one looking for a polite close that never happened.
    """

    MESSAGE = (
        "The server refused the WebSocket handshake (HTTP 403 or closed before accept: "
        "check Origin/ALLOWED_HOSTS)"
    )

    def __init__(self) -> None:
        super().__init__(None, self.MESSAGE)
        self.args = (self.MESSAGE,)

    def __str__(self) -> str:
        """The refusal alone, without the close-code wording of ConnectionClosed."""
        return self.MESSAGE


class OperationError(GraphQLWSError):
    """The server ended one operation with an ``error`` message instead of a result.

    ``errors`` is always a list of GraphQL error objects, whichever protocol was spoken
    (legacy ``graphql-ws`` sends a single object; it is wrapped in a list here), so the same
    assertions work for both.
    """

    def __init__(self, operation_id: str, errors: list[dict[str, Any]]):
        self.operation_id = operation_id
        self.errors = errors
        messages = "; ".join(str(error.get("message", error)) for error in errors)
        super().__init__(f"Operation {operation_id} failed: {messages}")
