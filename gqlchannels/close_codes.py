"""The WebSocket close codes gqlchannels sends, in a leaf module (the admin and the control
plane name them without importing the protocols)."""

from __future__ import annotations

import enum


class CloseCode(enum.IntEnum):
    """WebSocket close codes gqlchannels sends.

    All but SERVICE_RESTART are within what Daphne relays as ``websocket.close`` (1000,
    3000-4999); ``gqlchannels.servers`` sends 1012 under Daphne as a plain close frame.
    """

    NORMAL = 1000
    SERVICE_RESTART = 1012
    KEEPALIVE_TIMEOUT = 3008
    DISCONNECTED_BY_SERVER = 4000
    BAD_REQUEST = 4400
    UNAUTHORIZED = 4401
    FORBIDDEN = 4403
    SUBPROTOCOL_NOT_ACCEPTABLE = 4406
    CONNECTION_INIT_TIMEOUT = 4408
    SUBSCRIBER_ALREADY_EXISTS = 4409
    CLIENT_NOT_READING = 4413
    TOO_MANY_INIT_REQUESTS = 4429
    INTERNAL_SERVER_ERROR = 4500
