"""Signed, expiring login tokens for WebSocket clients that have no session cookie.

A token is ``django.core.signing`` over the user's primary key: nothing is stored, it cannot
be forged without ``SECRET_KEY``, and it stops working after ``TOKEN_MAX_AGE`` seconds.
"""

from __future__ import annotations

import time
from typing import Any

from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.core import signing

TOKEN_SALT = "gqlchannels-demo-token"
#: A token is accepted for one day after it was made.
TOKEN_MAX_AGE = 24 * 60 * 60


def make_token(user: Any) -> str:
    """A token that identifies ``user`` (for ``connection_init``'s ``token``) for a day; it
    carries its expiry (``exp``, a UNIX time), at which a connection it opened is closed."""
    return signing.dumps(
        {"user": user.pk, "exp": int(time.time()) + TOKEN_MAX_AGE}, salt=TOKEN_SALT
    )


def token_expiry(token: str) -> float | None:
    """When ``token`` stops being valid (its ``exp``), or None when it does not say."""
    try:
        data = signing.loads(token, salt=TOKEN_SALT, max_age=TOKEN_MAX_AGE)
    except signing.BadSignature:
        return None
    expiry = data.get("exp") if isinstance(data, dict) else None
    return float(expiry) if isinstance(expiry, int | float) else None


async def user_for_token(token: Any) -> Any | None:
    """The active user ``token`` identifies, or None when it is malformed, forged, expired, or
    names a user that no longer exists or was deactivated. Safe to await from a consumer."""
    if not isinstance(token, str) or not token:
        return None
    try:
        data = signing.loads(token, salt=TOKEN_SALT, max_age=TOKEN_MAX_AGE)
    except signing.BadSignature:  # SignatureExpired is a BadSignature too
        return None
    if not isinstance(data, dict) or "user" not in data:
        return None
    return await _active_user(data["user"])


@database_sync_to_async
def _active_user(pk: Any) -> Any | None:
    user_model = get_user_model()
    try:
        return user_model._default_manager.get(pk=pk, is_active=True)
    except (user_model.DoesNotExist, ValueError, TypeError):
        return None
