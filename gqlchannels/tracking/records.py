"""Snapshots of what a registry row holds, taken by the consumer when the event happens.

The connection signals carry these frozen records (``record=``), so the live registry, and any
receiver of a project's own, never reads a live consumer later: what a row says is what was
true when the connection opened or the operation started. A user replaced after the connection
opened (``on_connect`` may set ``scope["user"]``) comes as a new record, through the
``connection_updated`` signal.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

from .. import conf
from ..delivery import Delivered
from ..redaction import clean_text, stored_document, stored_variables

_server_tokens: dict[int, str] = {}


def server_id() -> str:
    """``host:pid:token`` of this process.

    The random token tells apart two processes that got the same pid on the same host (a
    restarted container's server is often pid 1): the new one must not keep the old one's
    rows alive with its heartbeats.
    """
    pid = os.getpid()
    token = _server_tokens.setdefault(pid, secrets.token_hex(3))
    return f"{socket.gethostname()}:{pid}:{token}"


@dataclass(frozen=True)
class ConnectionRecord:
    """One accepted connection, as its registry row shows it.

    ``channel_name`` is the process's hub channel that reaches the connection from outside
    (``""`` when there is no channel layer); ``user`` is the user object of the scope (None
    when anonymous or unknown).
    """

    connection_id: str
    channel_name: str
    server_id: str
    user: Any
    protocol: str
    remote_address: str
    user_agent: str
    connected_at: datetime

    @classmethod
    def of(
        cls, scope: Mapping[str, Any], connection_id: str, channel_name: str, protocol: str
    ) -> ConnectionRecord:
        """The record of a connection accepted now, from its ASGI ``scope``."""
        client = scope.get("client") or ()
        return cls(
            connection_id=connection_id,
            channel_name=channel_name,
            server_id=server_id(),
            user=scope.get("user"),
            protocol=protocol,
            remote_address=":".join(str(part) for part in client[:2])[:100],
            user_agent=clean_text(_header(scope, b"user-agent"))[:500],
            connected_at=timezone.now(),
        )


@dataclass(frozen=True)
class OperationRecord:
    """One admitted operation, as its registry row shows it (topics come later, as the
    operation listens: the ``operation_topics`` signal).

    The ids and the name are as the client sent them (the row bounds them to its columns);
    the document and the redacted variables are already cut to ``TRACKING_MAX_DOCUMENT_BYTES``
    / ``TRACKING_MAX_VARIABLES_BYTES`` (``gqlchannels.redaction``), so no row can be refused
    for its size. ``delivered`` is the one live part: the operation's count of result frames,
    which its send path increments and the registry samples (``gqlchannels.delivery``).
    """

    connection_id: str
    operation_id: str
    operation_type: str
    operation_name: str
    document: str
    variables: Any
    started_at: datetime
    delivered: Delivered = field(default_factory=Delivered, compare=False)

    @classmethod
    def of(
        cls,
        connection_id: str,
        operation_id: str,
        request: Any,
        operation_type: str,
        operation_name: str,
        delivered: Delivered | None = None,
    ) -> OperationRecord:
        """The record of an operation admitted now; ``request`` is its OperationRequest,
        ``delivered`` the counter its send path increments."""
        return cls(
            connection_id=connection_id,
            operation_id=operation_id,
            operation_type=operation_type,
            operation_name=operation_name,
            document=stored_document(request.query, conf.get("TRACKING_MAX_DOCUMENT_BYTES")),
            variables=stored_variables(request.variables, conf.get("TRACKING_MAX_VARIABLES_BYTES")),
            started_at=timezone.now(),
            delivered=delivered if delivered is not None else Delivered(),
        )


def _header(scope: Mapping[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return ""
