"""Which WebSocket origins may connect: ``ALLOWED_HOSTS`` for browsers, and scripts let in.

Channels' ``AllowedHostsOriginValidator`` refuses every socket without an ``Origin`` header,
so every non-browser client (``gql``, Node's ``ws``, ``graphql-ws``, Apollo's
``subscriptions-transport-ws``) gets a bare HTTP 403 that it reports as "connect failed".
The check exists against cross-site WebSocket hijacking: a page on another site opening a
socket that carries the visitor's cookies. Only browsers can be made to do that, and browsers
always send ``Origin``; a client that sends none is a program acting for whoever runs it, with
only the credentials it was given. So ``OriginValidator`` admits a socket without ``Origin``
and checks the origin of every socket that has one against ``ALLOWED_HOSTS``, matched as
Django matches hosts. ``require_origin=True`` refuses sockets without one, as Channels does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.http import is_same_domain

__all__ = ["OriginValidator", "allowed_hosts", "origin_allowed"]

logger = logging.getLogger(__name__)

#: What Django admits as hosts when ``DEBUG`` is on and ``ALLOWED_HOSTS`` is empty.
DEBUG_HOSTS = (".localhost", "127.0.0.1", "[::1]")


def allowed_hosts() -> list[str]:
    """The host patterns a browser origin must match: ``ALLOWED_HOSTS``, or under ``DEBUG``
    with none set, Django's local defaults (as Django itself and Channels do)."""
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        return list(DEBUG_HOSTS)
    return hosts


def _pattern_host(pattern: str) -> str:
    """A host pattern without brackets or port (``[::1]`` -> ``::1``), lower-case."""
    if pattern.startswith("."):
        return pattern.lower()
    try:
        return urlsplit("//" + pattern).hostname or pattern.lower()
    except ValueError:
        return pattern.lower()


def origin_allowed(origin: str, patterns: Sequence[str]) -> bool:
    """Whether the ``Origin`` header value ``origin`` names a host of ``patterns``.

    ``*`` matches every origin; ``.example.com`` matches the domain and its subdomains;
    anything else matches exactly, whatever the scheme and port (``ALLOWED_HOSTS`` names
    hosts only). An origin without a host (``null``, from sandboxed frames and files) matches
    only ``*``.
    """
    if "*" in patterns:
        return True
    try:
        hostname = urlsplit(origin).hostname
    except ValueError:
        return False
    if not hostname:
        return False
    return any(is_same_domain(hostname, _pattern_host(pattern)) for pattern in patterns)


def _origin_of(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The ``Origin`` header of an ASGI scope, decoded; None when there is none."""
    origin = None
    for name, value in headers:
        if name.lower() == b"origin":
            origin = value.decode("latin-1")
    return origin


class OriginValidator:
    """ASGI middleware for the ``websocket`` route: admit sockets from allowed origins only.

    Why not Channels' ``AllowedHostsOriginValidator``: it refuses every client that sends no
    ``Origin``, which is every client but a browser, though only browsers can be turned
    against their user across sites (see the module docstring). This one admits a socket
    without ``Origin`` unless ``require_origin`` is true, and checks any ``Origin`` against
    ``ALLOWED_HOSTS`` (read at each connection, so ``override_settings`` works). A refused
    socket is closed before it is accepted, which the server answers with HTTP 403, as
    Channels does; the refusal is logged at INFO with the origin, so a wrong
    ``ALLOWED_HOSTS`` is found in the log rather than guessed from a client's "connect
    failed".
    """

    def __init__(self, application: Any, *, require_origin: bool = False):
        self.application = application
        self.require_origin = require_origin

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        """Pass an admitted socket to the application; refuse any other with HTTP 403."""
        if scope["type"] != "websocket":
            raise ValueError("OriginValidator guards WebSocket connections only")
        origin = _origin_of(scope.get("headers", ()))
        if self.admits(origin):
            return await self.application(scope, receive, send)
        logger.info(
            "Refused a WebSocket to %s from origin %r: %s",
            scope.get("path", "?"),
            origin,
            "no Origin header, and one is required"
            if origin is None
            else "its host is not in ALLOWED_HOSTS",
        )
        await _refuse(receive, send)
        return None

    def admits(self, origin: str | None) -> bool:
        """Whether a socket with this ``Origin`` header (None: without one) is let in."""
        if origin is None:
            return not self.require_origin
        return origin_allowed(origin, allowed_hosts())


async def _refuse(receive: Any, send: Any) -> None:
    """Refuse the handshake: close before accepting, which servers answer with HTTP 403."""
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close"})
