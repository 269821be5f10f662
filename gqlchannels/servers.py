"""What the ASGI server under a connection lets it do beyond the ASGI messages themselves.

ASGI gives an application ``websocket.send`` and ``websocket.close``, but servers differ where
it matters for a clean stop:

- Daphne (through autobahn) refuses close codes outside 1000 and 3000-4999 and then sends no
  close frame at all, so 1012 (Service Restart), the code reconnecting clients expect on a
  deploy, cannot be sent as ``websocket.close``. Daphne hands each application a ``send`` bound
  to its protocol object, which can send any close code as a plain close frame.
- uvicorn sends whatever code it is given.
- Daphne's ``send`` never waits: frames for a client that stopped reading pile up in
  Twisted's write buffer, without bound, and nothing in ASGI says so. uvicorn's ``send``
  waits while its transport is over the high-water mark. Both servers' transports can say
  how many bytes they hold that the client has not taken: the only sound signal of a
  stalled reader that works for the legacy protocol, which has no acknowledgement at all.

- Daphne also queues every frame it reads for the application, without bound: a client
  that writes tiny frames faster than they are handled grows that queue and keeps the loop
  busy parsing. uvicorn's queue is bounded and stops reading when full. Under Daphne the
  socket here stops reading while the queue is long (``pace_reading``), which gives TCP's
  own backpressure to the writer.

``ServerSocket`` hides these differences behind ``close(code, reason)``,
``buffered_bytes()`` and ``pace_reading()``; everything else goes through the ASGI ``send``
unchanged.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

try:  # Daphne's WebSocket library
    from autobahn.exception import Disconnected as _DaphneDisconnected
except ImportError:  # pragma: no cover - served without Daphne
    _DaphneDisconnected = ConnectionError  # type: ignore[assignment,misc]

logger = logging.getLogger("gqlchannels.servers")

#: The ASGI ``send`` callable (any message type).
Send = Callable[[Any], Awaitable[None]]

#: Close codes every ASGI server relays as ``websocket.close``.
_PORTABLE_CLOSE_CODES = frozenset({1000, *range(3000, 5000)})
#: A close reason must fit the 123 bytes a close frame leaves for it.
_MAX_REASON_BYTES = 123
#: Frames waiting for the application above which Daphne stops reading the socket, and at or
#: below which it reads again.
READ_PAUSE_ABOVE = 64
READ_RESUME_AT = 16


class ServerSocket:
    """One accepted WebSocket, as the server under it lets the application drive it."""

    def __init__(self, send: Send):
        self.send = send
        self._raw_closer = _daphne_protocol(send)
        self._transport = _transport(send, self._raw_closer)
        self._reading_paused = False

    async def send_text(self, text: str) -> None:
        """Send one text frame; ConnectionError (an OSError) when the client is gone.

        uvicorn raises an OSError then. Daphne raises autobahn's ``Disconnected`` (a
        RuntimeError) from the moment it has seen the TCP connection end until the
        application gets ``websocket.disconnect``, seconds later under load: translated
        here, so that a keepalive ping in that window is dropped, not an internal error.
        """
        try:
            await self.send({"type": "websocket.send", "text": text})
        except _DaphneDisconnected as exc:
            raise ConnectionError(f"the client is gone ({exc})") from exc

    async def close(self, code: int, reason: str = "") -> None:
        """Close with ``code``, including codes Daphne would refuse as ``websocket.close``."""
        code = int(code)  # Daphne (autobahn) refuses an IntEnum member and would send nothing
        if code not in _PORTABLE_CLOSE_CODES and self._raw_closer is not None:
            self._raw_closer.sendCloseFrame(
                code=code, reasonUtf8=reason.encode()[:_MAX_REASON_BYTES] or None, isReply=False
            )
            return
        message: dict[str, Any] = {"type": "websocket.close", "code": code}
        if reason:
            message["reason"] = reason
        await self.send(message)

    def buffered_bytes(self) -> int | None:
        """Bytes the server holds for this socket that the kernel has not taken yet (the
        client is not reading them), or None when the server does not say."""
        transport = self._transport
        if transport is None:
            return None
        size = getattr(transport, "get_write_buffer_size", None)
        if size is not None:  # asyncio (uvicorn)
            return int(size())
        # Twisted (Daphne): what is left of the buffer being written, plus what waits behind.
        return int(len(transport.dataBuffer) - transport.offset + transport._tempDataLen)

    def pace_reading(self) -> None:
        """Stop reading the socket while many received frames wait for the application, and
        read again once it has caught up (Daphne only; other servers bound their queue)."""
        queue = getattr(self._raw_closer, "application_queue", None)
        if queue is None or self._transport is None:
            return
        waiting = queue.qsize()
        if not self._reading_paused and waiting > READ_PAUSE_ABOVE:
            self._reading_paused = True
            self._transport.pauseProducing()
        elif self._reading_paused and waiting <= READ_RESUME_AT:
            self._reading_paused = False
            self._transport.resumeProducing()


def _transport(send: Send, daphne_protocol: Any) -> Any:
    """The transport under ``send``: Twisted's under Daphne, asyncio's under uvicorn."""
    if daphne_protocol is not None:
        transport = getattr(daphne_protocol, "transport", None)
        if all(hasattr(transport, name) for name in ("dataBuffer", "offset", "_tempDataLen")):
            return transport
        return None
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    return transport if hasattr(transport, "get_write_buffer_size") else None


def _daphne_protocol(send: Send) -> Any:
    """Daphne's protocol object behind ``send`` (``partial(server.handle_reply, protocol)``),
    or None under any other server."""
    if not isinstance(send, functools.partial) or not send.args:
        return None
    protocol = send.args[0]
    owner = getattr(send.func, "__self__", None)
    if type(owner).__module__.startswith("daphne.") and hasattr(protocol, "sendCloseFrame"):
        return protocol
    return None
