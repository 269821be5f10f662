"""GraphQL over WebSocket for Django Channels: both subprotocols, any graphql-core schema.

The public API is importable from here; the consumer is imported lazily so that
``import gqlchannels`` works before Django's settings are configured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .broadcast import BroadcastError, broadcast, broadcast_sync, listen
from .execution import OperationRequest, inline
from .protocols import CloseCode, ConnectionRejected, OperationRefused

if TYPE_CHECKING:
    from .consumers import GraphQLWSConsumer
    from .context import GraphQLWSContext

__all__ = [
    "BroadcastError",
    "CloseCode",
    "ConnectionRejected",
    "GraphQLWSConsumer",
    "GraphQLWSContext",
    "OperationRefused",
    "OperationRequest",
    "broadcast",
    "broadcast_sync",
    "inline",
    "listen",
]


def __getattr__(name: str) -> Any:
    if name == "GraphQLWSConsumer":
        from .consumers import GraphQLWSConsumer

        return GraphQLWSConsumer
    if name == "GraphQLWSContext":
        from .context import GraphQLWSContext

        return GraphQLWSContext
    raise AttributeError(name)
