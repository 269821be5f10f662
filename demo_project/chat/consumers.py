"""The demo's WebSocket endpoint: gqlchannels' consumer plus token login."""

from __future__ import annotations

import logging
from typing import Any

from gqlchannels.consumers import GraphQLWSConsumer

from .tokens import token_expiry, user_for_token

logger = logging.getLogger(__name__)


class ChatConsumer(GraphQLWSConsumer):
    """Serves the chat schema; a ``token`` in ``connection_init`` logs the connection in.

    Browsers on the same site are already logged in through the session cookie
    (``AuthMiddlewareStack``); scripts and other clients send ``{"token": ...}`` from
    ``manage.py chat_token`` instead. A token that does not check out refuses the connection
    (``graphql-transport-ws`` closes 4403) rather than silently continuing as anonymous, so a
    client with an expired token finds out at once, and a connection opened with a token is
    closed (4403) when the token expires. Without a token the session user stays; logging
    out closes the connection (``GQLCHANNELS['END_SESSIONS']``).
    """

    async def on_connect(self, payload: dict[str, Any]) -> bool | dict[str, Any] | None:
        """Swap the connection's user for the token's, or refuse an invalid token."""
        token = payload.get("token")
        if token is None:
            return None
        user = await user_for_token(token)
        if user is None:
            logger.info("Refused a connection with an invalid or expired token")
            return False
        self.scope["user"] = user
        expiry = token_expiry(token)
        if expiry is not None:
            self.expire_at(expiry)  # closed 4403 when the token runs out, not only at connect
        return None

    async def on_disconnect(self) -> None:
        """Log each connection's end: by now every operation on it has finished and run its
        ``finally``, so this line marks a connection that left nothing behind."""
        host, port = (self.scope.get("client") or ("?", "?"))[:2]
        logger.info("Chat connection from %s:%s closed", host, port)
