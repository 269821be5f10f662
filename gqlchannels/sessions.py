"""Connections end when their credentials end.

A connection acts for identities: its user (``user:<pk>``) and its Django session
(``session:<key>``), read from its scope (``AuthMiddlewareStack`` sets both; ``on_connect``
may replace the user). When one of them ends, every connection acting for it is closed 4403
(legacy ``connection_error`` first) in every process, through the control group
(``gqlchannels.control.end_sessions``): one channel-layer message per process.

With ``GQLCHANNELS['END_SESSIONS']`` on (the default), these end an identity, each once its
transaction has committed (a rolled-back deactivation ends nothing):

- ``user_logged_out``: the user;
- a user saved with ``is_active=False``, or deleted: the user;
- a ``django.contrib.sessions`` session deleted (logout, ``clearsessions`` of an expired
  one, an admin deleting it): that session.
"""

from __future__ import annotations

import logging
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from .control import end_sessions, session_identity, user_identity
from .exceptions import LayerMissing
from .layer import run_from_sync

logger = logging.getLogger("gqlchannels.sessions")

_UID = "gqlchannels.sessions"


def identities(scope: Any) -> frozenset[str]:
    """The identities a connection with ``scope`` acts for, as of now."""
    found = set()
    user = scope.get("user")
    if getattr(user, "is_authenticated", False) and getattr(user, "pk", None) is not None:
        found.add(user_identity(user))
    session_key = getattr(scope.get("session"), "session_key", None)
    if session_key:
        found.add(session_identity(session_key))
    return frozenset(found)


def end_identity_on_commit(identity: str, reason: str, using: str | None = None) -> None:
    """End ``identity``'s connections once the current transaction commits (at once in
    autocommit). A channel layer that fails is logged, never raised into the caller, whose
    change is committed already."""
    transaction.on_commit(lambda: _end_now(identity, reason), using=using)


def _end_now(identity: str, reason: str) -> None:
    try:
        run_from_sync(end_sessions(identity, reason), "end_sessions_sync", "end_sessions")
    except LayerMissing:
        logger.debug("No channel layer: nothing to end for %s", identity)
    except Exception:
        logger.warning("Could not end the connections of %s", identity, exc_info=True)


def _logged_out(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    if user is not None and user.pk is not None:
        end_identity_on_commit(user_identity(user), "Signed out")


def _user_saved(sender: Any, instance: Any, using: str, **kwargs: Any) -> None:
    if getattr(instance, "is_active", True) is False:
        end_identity_on_commit(user_identity(instance), "Account deactivated", using)


def _user_deleted(sender: Any, instance: Any, using: str, **kwargs: Any) -> None:
    end_identity_on_commit(user_identity(instance), "Account deleted", using)


def _session_deleted(sender: Any, instance: Any, using: str, **kwargs: Any) -> None:
    end_identity_on_commit(session_identity(instance.session_key), "Session ended", using)


def connect() -> None:
    """Connect the receivers above (idempotent; called at start-up when END_SESSIONS is on)."""
    user_logged_out.connect(_logged_out, dispatch_uid=f"{_UID}.logout")
    user_model = get_user_model()
    post_save.connect(_user_saved, sender=user_model, dispatch_uid=f"{_UID}.user_saved")
    post_delete.connect(_user_deleted, sender=user_model, dispatch_uid=f"{_UID}.user_deleted")
    if apps.is_installed("django.contrib.sessions"):
        session_model = apps.get_model("sessions", "Session")
        post_delete.connect(
            _session_deleted, sender=session_model, dispatch_uid=f"{_UID}.session_deleted"
        )
