"""One WebSocket's state and the one guarded send every outgoing frame goes through.

The socket is CONNECTING until accepted, OPEN until either side closes it, then CLOSED.
Sending is attempted only while OPEN; after that, frames are dropped at DEBUG level, and so
are frames the server refuses because the client has gone (Daphne drops them, uvicorn
raises ``OSError``). Nothing else is swallowed: a frame that cannot be encoded never gets
here as text, and a bug still raises.

The send also bounds what a client that stopped reading costs: once the server holds more
than the budget of unread bytes for it, the socket closes (4413) instead of buffering more.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable

from .close_codes import CloseCode
from .servers import ServerSocket

logger = logging.getLogger("gqlchannels.consumer")


class SocketState(enum.Enum):
    """Where the WebSocket itself is; sends are only attempted while OPEN."""

    CONNECTING = "connecting"
    OPEN = "open"
    CLOSED = "closed"


class GuardedSocket:
    """The consumer's side of one WebSocket: its state, its guarded send, its one close."""

    def __init__(self, server: ServerSocket, label: str, on_closed: Callable[[], None]):
        self.server = server
        self.state = SocketState.CONNECTING
        #: Bytes the server may hold for this client before it counts as not reading.
        self.budget = 0
        #: Set once this side has sent its close frame: the connection is over for us.
        self.closed_here = asyncio.Event()
        #: Whether the socket was ever accepted (only those are counted as closed).
        self.was_opened = False
        #: The code the connection closed with: ours if we closed first, else the client's;
        #: None while open, and for a connection that ended without a close code.
        self.close_code: int | None = None
        self._label = label
        self._on_closed = on_closed

    @property
    def is_open(self) -> bool:
        """Whether frames may be sent."""
        return self.state is SocketState.OPEN

    def opened(self, budget: int) -> None:
        """The socket was accepted; ``budget`` bounds the unread bytes the server may hold."""
        self.state = SocketState.OPEN
        self.was_opened = True
        self.budget = budget

    def gone(self, code: int | None = None) -> None:
        """The server says the socket is closed (``websocket.disconnect``, with the client's
        close ``code`` when it sent one first)."""
        self.state = SocketState.CLOSED
        if self.close_code is None:
            self.close_code = code

    async def send_text(self, text: str, kind: object = "frame") -> None:
        """Send one text frame, or drop it quietly when the socket is closing or gone."""
        if self.state is not SocketState.OPEN:
            logger.debug("Dropped %s frame: socket %s", kind, self.state.value)
            return
        buffered = self.server.buffered_bytes()
        if buffered is not None and buffered > self.budget:
            logger.info(
                "Closing connection %s: the client is not reading (%d bytes waiting, budget %d)",
                self._label,
                buffered,
                self.budget,
            )
            # The close frame waits behind the unread bytes, so the server drops the TCP
            # connection after its close handshake timeout; the buffer is freed either way.
            await self.close(CloseCode.CLIENT_NOT_READING, "Client not reading")
            return
        try:
            await self.server.send_text(text)
        except OSError as exc:
            self.state = SocketState.CLOSED
            logger.debug("Dropped %s frame: the socket is gone (%r)", kind, exc)

    async def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Close the socket once (later calls do nothing), then tell the owner."""
        if self.state is not SocketState.OPEN:
            return
        self.state = SocketState.CLOSED
        self.close_code = code or CloseCode.NORMAL
        try:
            await self.server.close(code or CloseCode.NORMAL, reason or "")
        except OSError as exc:
            logger.debug("Close frame not sent: the socket is gone (%r)", exc)
        self.closed_here.set()
        self._on_closed()
