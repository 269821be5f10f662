"""Who may see the playground: the one rule, from ``GQLCHANNELS['PLAYGROUND']``."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

from .. import conf


def playground_allowed(request: HttpRequest) -> bool:
    """Whether ``request`` may get the playground.

    ``PLAYGROUND`` None (the default): yes with ``DEBUG`` on, else only for an active staff
    user, because the page lets anyone who sees it run any operation and read any error the
    schema reports. True: everyone. False, or any value other than None and True (check
    E020 reports it): nobody, so that a mistyped setting never opens the page.
    """
    setting = conf.get("PLAYGROUND")
    if setting is None:
        return bool(settings.DEBUG) or _is_active_staff(request)
    return setting is True


def _is_active_staff(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)  # absent without AuthenticationMiddleware
    return bool(user is not None and user.is_active and user.is_staff)
