"""A bare WebSocket client over asyncio streams, for the hostile scenario's attackers.

An attacker must do what a well-behaved client library will not: stop reading altogether
while it keeps writing, write megabytes of tiny frames as fast as the kernel takes them,
shrink its receive buffer, vanish without a close frame. This client does exactly what it is
told and nothing else: no automatic pong, no close handshake, no reading unless asked.

Frames it sends are masked with an all-zero key (the server cannot tell a chosen key from a
random one, and masking megabytes in Python would make the attacker the bottleneck).
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from dataclasses import dataclass

from benchmarks.client import dumps

#: Bytes the stream reader buffers before it stops reading from the socket.
READ_LIMIT = 1 << 16
#: Receive buffer an attacker that stops reading asks its kernel for: the server's bytes then
#: wait in the server rather than in this machine's kernel.
SMALL_RECEIVE_BUFFER = 16 * 1024
OPCODE_TEXT = 0x1
OPCODE_CLOSE = 0x8
ZERO_MASK = b"\x00\x00\x00\x00"


class HandshakeFailed(RuntimeError):
    """The server did not switch protocols (its status line is the message)."""


@dataclass
class Ending:
    """How a connection ended as its client saw it: the close code received, or None when the
    TCP connection ended without a close frame (``dropped``), or still open at the deadline."""

    code: int | None
    dropped: bool = False
    still_open: bool = False

    def describe(self) -> str:
        """``closed 4413``, ``dropped`` or ``open``."""
        if self.still_open:
            return "open"
        return "dropped" if self.dropped else f"closed {self.code}"


def text_frame(text: str) -> bytes:
    """One masked (zero-key), final text frame carrying ``text``."""
    payload = text.encode()
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | OPCODE_TEXT, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x80 | OPCODE_TEXT, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | OPCODE_TEXT, 0x80 | 127, length)
    return header + ZERO_MASK + payload


class RawWebSocket:
    """One WebSocket connection driven frame by frame."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(
        cls, host: str, port: int, path: str, protocol: str, small_receive_buffer: bool = False
    ) -> RawWebSocket:
        """Open a TCP connection and complete the WebSocket handshake offering ``protocol``.
        ``small_receive_buffer`` asks the kernel for a tiny receive buffer before connecting
        (an attacker that means to stop reading does that)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if small_receive_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RECEIVE_BUFFER)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
        except BaseException:
            sock.close()
            raise
        reader, writer = await asyncio.open_connection(sock=sock, limit=READ_LIMIT)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: {protocol}\r\nOrigin: http://{host}\r\n\r\n".encode()
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0].decode(errors="replace")
        if " 101 " not in f"{status} ":
            writer.transport.abort()
            raise HandshakeFailed(status)
        return cls(reader, writer)

    async def send(self, message: object) -> None:
        """Send one JSON frame (waits while the kernel's send buffer is full)."""
        await self.send_raw(text_frame(message if isinstance(message, str) else dumps(message)))

    async def send_raw(self, frames: bytes) -> None:
        """Send ready-made frames (waits while the kernel's send buffer is full)."""
        self.writer.write(frames)
        await self.writer.drain()

    async def frame(self) -> tuple[int, bytes]:
        """The next frame from the server: its opcode and payload (IncompleteReadError at
        the end of the stream)."""
        first, second = await self.reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, await self.reader.readexactly(length)

    async def text(self) -> str:
        """The next text frame's text, skipping WebSocket-level pings and pongs; ConnectionEnded
        when a close frame or the end of the stream comes first."""
        while True:
            try:
                opcode, payload = await self.frame()
            except (asyncio.IncompleteReadError, ConnectionError):
                raise ConnectionEnded(Ending(None, dropped=True)) from None
            if opcode == OPCODE_TEXT:
                return payload.decode()
            if opcode == OPCODE_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                raise ConnectionEnded(Ending(code))

    async def ending(self, timeout: float) -> tuple[Ending, int]:
        """Read (and discard) everything the server sends until it closes, at most
        ``timeout`` seconds; how it ended and how many text frames came before."""
        frames = 0
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await self.text()
                    frames += 1
        except ConnectionEnded as ended:
            return ended.ending, frames
        except TimeoutError:
            return Ending(None, still_open=True), frames

    def abort(self) -> None:
        """Reset the TCP connection: no close frame, as a dropped network does (nothing when
        the connection has already ended)."""
        transport = self.writer.transport
        sock = transport.get_extra_info("socket")
        if sock is not None and not transport.is_closing():
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass  # the peer reset it first
        transport.abort()


class ConnectionEnded(Exception):
    """The server closed the connection (or it dropped); ``ending`` says how."""

    def __init__(self, ending: Ending):
        super().__init__(ending.describe())
        self.ending = ending
