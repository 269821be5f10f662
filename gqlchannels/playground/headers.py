"""The security headers of every playground response.

The page runs operations with the visitor's session, so nothing but its own files may run in
it: scripts and styles from this origin only (no inline code, no CDN), sockets to this host
only, no framing (clickjacking), no content-type guessing.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponseBase


def content_security_policy(host: str) -> str:
    """The policy for a page served from ``host`` (``name[:port]``, as Django validated it
    against ``ALLOWED_HOSTS``). ``connect-src`` names ws:// and wss:// of that host as well
    as 'self', which not every browser extends to WebSocket URLs."""
    directives = (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        f"connect-src 'self' ws://{host} wss://{host}",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
    return "; ".join(directives)


def secure(response: HttpResponseBase, request: HttpRequest) -> HttpResponseBase:
    """Set the playground's security headers on ``response`` (to ``request``); return it."""
    response.headers["Content-Security-Policy"] = content_security_policy(request.get_host())
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response
