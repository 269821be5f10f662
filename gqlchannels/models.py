"""The live registry: one row per open connection, one per running operation.

Rows are written by ``gqlchannels.tracking`` off the hot path and read by the admin and by
``manage.py gqlchannels_audit``. A row is *stale* when its process has not refreshed
``last_seen`` for ``STALE_AFTER`` seconds: the process is presumably gone (killed, crashed,
its host lost) and nothing else will ever delete the row, which is what the audit prunes.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, Self

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from . import conf

#: Topics are stored one per line (a topic is an identifier, never multi-line).
TOPIC_SEPARATOR = "\n"


def stale_cutoff(now: datetime | None = None, stale_after: float | None = None) -> datetime:
    """The instant before which a ``last_seen`` makes a row stale: ``stale_after`` seconds
    (``STALE_AFTER`` unless given) before ``now``."""
    if stale_after is None:
        stale_after = conf.get("STALE_AFTER")
    return (now or timezone.now()) - timedelta(seconds=stale_after)


def join_topics(topics: set[str] | list[str] | tuple[str, ...]) -> str:
    """Topics as stored: sorted, one per line, so equal sets group together in queries."""
    return TOPIC_SEPARATOR.join(sorted({topic.replace("\n", " ") for topic in topics}))


def split_topics(stored: str) -> list[str]:
    """The topics of a stored ``topics`` value."""
    return [topic for topic in stored.split(TOPIC_SEPARATOR) if topic]


class RegistryQuerySet(models.QuerySet[Any]):
    """Rows of the registry, with the one stale/alive predicate that the admin, its
    disconnect action and the audit all use.

    ``cutoff`` left at None is ``stale_cutoff()``: ``STALE_AFTER`` before now.
    """

    #: How the rows reach the heartbeat of their connection.
    last_seen = "last_seen"

    def stale_condition(self, cutoff: datetime | None = None) -> Q:
        """``Q`` selecting the rows whose connection's process missed its heartbeats (for
        ``filter()`` and for conditional aggregates such as ``Count(filter=...)``)."""
        return Q(**{f"{self.last_seen}__lt": cutoff or stale_cutoff()})

    def stale(self, cutoff: datetime | None = None) -> Self:
        """Rows whose connection's process has not sent a heartbeat since ``cutoff``."""
        return self.filter(self.stale_condition(cutoff))

    def alive(self, cutoff: datetime | None = None) -> Self:
        """Rows whose connection's process sent a heartbeat since ``cutoff``."""
        return self.exclude(self.stale_condition(cutoff))


class ConnectionQuerySet(RegistryQuerySet):
    """Connections: the shared stale API, and ``purge``."""

    def purge(self) -> tuple[int, int]:
        """Delete these connections and their subscriptions in two statements; return how
        many of each went.

        ``QuerySet.delete()`` would load every connection and delete them 100 at a time to
        honour the cascade in Python; the registry's rows have no signals and nothing else
        refers to them, so the subscriptions go first in one statement, then the connections.
        """
        with transaction.atomic(using=self.db):
            subscriptions = Subscription.objects.using(self.db).filter(connection__in=self)
            deleted_subscriptions = subscriptions._raw_delete(self.db)
            deleted_connections = self._raw_delete(self.db)
        return deleted_connections, deleted_subscriptions


class SubscriptionQuerySet(RegistryQuerySet):
    """Operations, stale or alive by their connection's heartbeat."""

    last_seen = "connection__last_seen"


class Connection(models.Model):
    """One open WebSocket connection, in whatever process holds it.

    ``channel_name`` is that process's hub channel: ``gqlchannels.control`` reaches the
    connection through it (the admin's "Disconnect selected", the audit's ``--probe``).
    """

    connection_id = models.CharField(
        max_length=64, primary_key=True, help_text="The consumer's connection_id."
    )
    channel_name = models.CharField(
        max_length=200,
        blank=True,
        help_text="Hub channel of the holding process (empty: unreachable).",
    )
    server_id = models.CharField(
        max_length=255, db_index=True, help_text="host:pid:token of the serving process."
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    protocol = models.CharField(max_length=32, db_index=True)
    remote_address = models.CharField(max_length=100, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    connected_at = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)

    objects = ConnectionQuerySet.as_manager()

    class Meta:
        ordering = ["-connected_at"]
        permissions = [("disconnect_connection", "Can disconnect live connections")]

    def __str__(self) -> str:
        return f"{self.connection_id[:12]} ({self.protocol}, {self.server_id})"

    def is_stale(self, now: datetime | None = None) -> bool:
        """Whether the holding process missed its heartbeats for ``STALE_AFTER``."""
        return self.last_seen < stale_cutoff(now)


class Subscription(models.Model):
    """One running operation of a connection: mostly subscriptions, since a query or a
    mutation that starts and ends within one flush interval is never written."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    connection = models.ForeignKey(
        Connection, on_delete=models.CASCADE, related_name="subscriptions"
    )
    operation_id = models.CharField(max_length=200)
    operation_name = models.CharField(max_length=200, blank=True)
    operation_type = models.CharField(max_length=16, blank=True)
    document = models.TextField(blank=True)
    variables = models.JSONField(
        null=True, blank=True, help_text="Secret-looking keys are redacted."
    )
    topics = models.TextField(blank=True, help_text="One topic per line.")
    started_at = models.DateTimeField(db_index=True)
    events_sent = models.PositiveBigIntegerField(
        default=0, help_text="Result frames sent, as of the last heartbeat."
    )
    last_event_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the last result went out (to within one flush interval).",
    )

    objects = SubscriptionQuerySet.as_manager()

    class Meta:
        # It holds every running operation, not only subscriptions (the class keeps its name
        # so that the table, the admin URLs and imports stay as they were).
        verbose_name = "operation"
        verbose_name_plural = "operations"
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "operation_id"], name="gqlchannels_one_operation_per_id"
            )
        ]
        indexes = [models.Index(fields=["operation_type"], name="gqlchannels_sub_type_idx")]

    def __str__(self) -> str:
        return f"{self.operation_name or self.operation_type or 'operation'} {self.operation_id}"

    @property
    def topic_list(self) -> list[str]:
        """The topics this operation listens to."""
        return split_topics(self.topics)
