"""What the ASGI server under a connection lets it do beyond the ASGI messages themselves.

ASGI gives an application ``websocket.send`` and ``websocket.close``, but servers differ where
it matters for a clean stop:

- Daphne (through autobahn) refuses close codes outside 1000 and 3000-4999 and then sends no
  close frame at all, so 1012 (Service Restart), the code reconnecting clients expect on a
  deploy, cannot be sent as ``websocket.close``. Daphne hands each application a ``send`` bound
  to its protocol object, which can send any close code as a plain close frame.
- uvicorn sends whatever code it is given.

``ServerSocket`` hides that difference behind one ``close(code, reason)``; everything else
goes through the ASGI ``send`` unchanged.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger("gqlchannels.servers")

Send = Callable[[dict[str, Any]], Awaitable[None]]

#: Close codes every ASGI server relays as ``websocket.close``.
_PORTABLE_CLOSE_CODES = frozenset({1000, *range(3000, 5000)})
#: A close reason must fit the 123 bytes a close frame leaves for it.
_MAX_REASON_BYTES = 123


class ServerSocket:
    """One accepted WebSocket, as the server under it lets the application drive it."""

    def __init__(self, send: Send):
        self.send = send
        self._raw_closer = _daphne_protocol(send)

    async def send_text(self, text: str) -> None:
        """Send one text frame (the server may raise OSError when the client is gone)."""
        await self.send({"type": "websocket.send", "text": text})

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
