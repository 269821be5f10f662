"""A raw WebSocket client for tests against real server processes, on either protocol."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets

#: Upper bound of every wait on the server, in seconds.
TIMEOUT = 15.0


class RawClient:
    """One connection: frames in and out as dicts, keepalives handled, the close code read."""

    def __init__(self, ws: Any):
        self.ws = ws

    @classmethod
    async def connect(
        cls, url: str, protocol: str, headers: dict[str, str] | None = None
    ) -> RawClient:
        """Open a socket offering ``protocol`` (and sending ``headers``, e.g. an Origin)."""
        ws = await websockets.connect(
            url,
            subprotocols=[protocol],  # type: ignore[list-item]
            additional_headers=headers,
            open_timeout=TIMEOUT,
            close_timeout=TIMEOUT,
        )
        return cls(ws)

    async def send(self, message: dict[str, Any]) -> None:
        """Send one frame."""
        await asyncio.wait_for(self.ws.send(json.dumps(message)), TIMEOUT)

    async def frame(self) -> dict[str, Any]:
        """The next frame other than keepalives (a server ``ping`` is answered, ``ka`` skipped)."""

        async def read() -> dict[str, Any]:
            while True:
                frame: dict[str, Any] = json.loads(await self.ws.recv())
                if frame.get("type") == "ping":
                    await self.ws.send(json.dumps({"type": "pong"}))
                elif frame.get("type") != "ka":
                    return frame

        return await asyncio.wait_for(read(), TIMEOUT)

    async def close_code(self) -> int | None:
        """Wait for the connection to end; the close code received (None: no close frame)."""
        try:
            while True:
                await self.frame()
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None

    async def close(self) -> None:
        """Close politely (a no-op when closed already)."""
        await asyncio.wait_for(self.ws.close(), TIMEOUT)
