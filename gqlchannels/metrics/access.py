"""Who may scrape the metrics: the one rule, from ``METRICS_PUBLIC`` and ``METRICS_TOKEN``.

The metrics say how busy the service is, which close codes and errors its clients meet and
when the channel layer fails: not for everyone. As the Django admin does, the view lets in
an active staff user logged in through the admin; a Prometheus server has no session, so it
sends the token of ``METRICS_TOKEN`` as a bearer token (``authorization`` in its scrape
config); ``METRICS_PUBLIC = True`` lets everyone in (a port only the monitoring network
reaches).
"""

from __future__ import annotations

import hmac

from django.http import HttpRequest, HttpResponse

from .. import conf

#: The scheme of the Authorization header the token comes in (RFC 6750).
SCHEME = "bearer"


def denial(request: HttpRequest) -> HttpResponse | None:
    """None when ``request`` may read the metrics, else the answer that refuses it.

    With a token set, a request without it (or with a wrong one) gets 401 and a
    ``WWW-Authenticate: Bearer`` challenge, so a misconfigured scraper says what is missing;
    without a token, 403. A ``METRICS_PUBLIC`` other than True, or a token that is not a
    non-empty string (checks E023, E024), lets nobody in by that way.
    """
    if conf.get("METRICS_PUBLIC") is True or _is_active_staff(request):
        return None
    token = conf.get("METRICS_TOKEN")
    if not isinstance(token, str) or not token:
        return HttpResponse("Metrics are for staff only.\n", status=403, content_type="text/plain")
    if _bearer_token_matches(request, token):
        return None
    response = HttpResponse("A bearer token is needed.\n", status=401, content_type="text/plain")
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


def _bearer_token_matches(request: HttpRequest, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != SCHEME:
        return False
    # Compared in constant time, as bytes (compare_digest refuses non-ASCII text).
    return hmac.compare_digest(given.strip().encode(), token.encode())


def _is_active_staff(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)  # absent without AuthenticationMiddleware
    return bool(user is not None and user.is_active and user.is_staff)
