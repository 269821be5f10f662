"""Frames as the test client (``gqlchannels.testing``) sees them: server events decoded into
protocol frames (or the ProtocolError the server's mistake deserves), errors in one shape
whatever the protocol, and request headers made ASGI with an Origin the project admits."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .exceptions import ProtocolError
from .security import allowed_hosts

Header = tuple[bytes | str, bytes | str]


def decoded_frame(event: dict[str, Any]) -> dict[str, Any]:
    """The protocol frame in one ``websocket.send`` event; ProtocolError for anything else."""
    text = event.get("text") if event["type"] == "websocket.send" else None
    if text is None:
        raise ProtocolError(f"Expected a text frame, got {event!r}")
    try:
        frame = json.loads(text)
    except ValueError:
        raise ProtocolError(f"The server sent invalid JSON: {text[:200]!r}") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise ProtocolError(f"The server sent a frame without a type: {frame!r}")
    return frame


def default_origin() -> bytes | None:
    """The Origin a test sends when it gives none: ``http://`` and the first host the settings
    allow (``testserver`` in a new project under pytest-django, which adds it to
    ``ALLOWED_HOSTS``), so that Channels' ``AllowedHostsOriginValidator``, which refuses a
    socket without Origin, and gqlchannels' ``OriginValidator`` both admit it. None when no
    host is allowed: then no Origin passes either validator, and only gqlchannels' admits the
    socket without one."""
    for pattern in allowed_hosts():
        if pattern != "*":
            return f"http://{pattern.lstrip('.')}".encode("latin-1")
    return b"http://localhost" if allowed_hosts() else None


def with_origin(headers: Iterable[Header] | None) -> list[tuple[bytes, bytes]]:
    """ASGI headers (lower-case bytes), with the ``default_origin`` added when the test gave
    no Origin."""
    normalized = [(_as_bytes(name).lower(), _as_bytes(value)) for name, value in headers or ()]
    origin = default_origin()
    if origin is not None and not any(name == b"origin" for name, _ in normalized):
        normalized.append((b"origin", origin))
    return normalized


def _as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


def as_error_list(payload: Any) -> list[dict[str, Any]]:
    """Errors of an ``error`` message as a list: graphql-transport-ws sends a list, legacy one
    object."""
    if isinstance(payload, list):
        return [error if isinstance(error, dict) else {"message": str(error)} for error in payload]
    if isinstance(payload, dict):
        return [payload]
    return [{"message": str(payload)}]
