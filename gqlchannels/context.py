"""What resolvers find in ``info.context`` on a gqlchannels connection."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class GraphQLWSContext:
    """The context of one operation: the connection's ASGI scope, its user, the
    ``connection_init`` payload, and the consumer serving it.

    Item access (``info.context["user"]``) works too, for resolvers written against
    libraries whose context is a dict.
    """

    scope: Mapping[str, Any]
    connection_params: dict[str, Any]
    consumer: Any
    operation_id: str
    #: Topics the operation listens to (filled by ``gqlchannels.listen``).
    topics: set[str] = field(default_factory=set)

    @property
    def user(self) -> Any:
        """``scope["user"]`` as set by ``AuthMiddlewareStack`` (or ``on_connect``), else None."""
        return self.scope.get("user")

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None
