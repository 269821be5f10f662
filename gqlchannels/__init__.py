"""GraphQL over WebSocket for Django Channels: both subprotocols, any graphql-core schema.

The public API is importable from here, lazily: ``import gqlchannels`` (or any submodule)
loads neither Django's settings nor the channel-layer stack until a name that needs them is
used. ``broadcast``, ``broadcast_sync`` and ``listen`` are bound at import: ``broadcast`` is
also a submodule's name, and importing that submodule would otherwise rebind the package's
``broadcast`` to the module (the module itself imports the layer only when used).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .broadcast import broadcast, broadcast_sync, listen

__version__ = "0.1.0"

#: Each public name, and the module that defines it.
_PUBLIC = {
    "BroadcastError": "exceptions",
    "CloseCode": "close_codes",
    "ConnectionRejected": "exceptions",
    "GraphQLWSConsumer": "consumers",
    "GraphQLWSContext": "context",
    "OperationRefused": "exceptions",
    "OperationRequest": "execution",
    "inline": "resolvers",
    "pure": "purity",
    "publish_changes": "changes",
    "publish_failures": "change_delivery",
}

if TYPE_CHECKING:
    from .change_delivery import publish_failures
    from .changes import publish_changes
    from .close_codes import CloseCode
    from .consumers import GraphQLWSConsumer
    from .context import GraphQLWSContext
    from .exceptions import BroadcastError, ConnectionRejected, OperationRefused
    from .execution import OperationRequest
    from .purity import pure
    from .resolvers import inline

__all__ = [
    "BroadcastError",
    "CloseCode",
    "ConnectionRejected",
    "GraphQLWSConsumer",
    "GraphQLWSContext",
    "OperationRefused",
    "OperationRequest",
    "__version__",
    "broadcast",
    "broadcast_sync",
    "inline",
    "listen",
    "publish_changes",
    "publish_failures",
    "pure",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use."""
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'gqlchannels' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
