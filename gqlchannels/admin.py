"""Admin pages of the live registry: who is connected, to what, and whether it is alive.

Rows are read-only (the registry belongs to the serving processes); the one thing staff can
do is "Disconnect selected", which closes the connections with code 4000
(``CloseCode.DISCONNECTED_BY_SERVER``) through the channel layer, in whatever process holds
them. It needs the ``gqlchannels.disconnect_connection`` permission (superusers have it).
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from . import conf, control
from .close_codes import CloseCode
from .models import Connection, Subscription, split_topics, stale_cutoff
from .redaction import CUT_MARKER, is_cut

_USERNAME = get_user_model().USERNAME_FIELD


class HeartbeatFilter(admin.SimpleListFilter):
    """Alive (heartbeat within ``STALE_AFTER``) or stale (its process is presumably gone)."""

    title = "heartbeat"
    parameter_name = "heartbeat"
    #: How the filtered model reaches ``Connection.last_seen``.
    last_seen = "last_seen"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        """The two states."""
        return [("alive", "alive"), ("stale", "stale")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        """Rows in the chosen state (all of them when none is chosen)."""
        stale = Q(**{f"{self.last_seen}__lt": stale_cutoff()})
        if self.value() == "alive":
            return queryset.exclude(stale)
        if self.value() == "stale":
            return queryset.filter(stale)
        return queryset


class SubscriptionHeartbeatFilter(HeartbeatFilter):
    """``HeartbeatFilter`` for operations, by their connection's heartbeat."""

    last_seen = "connection__last_seen"


def summary() -> dict[str, Any]:
    """The counts shown above both change lists (two aggregate queries)."""
    alive = Q(last_seen__gte=stale_cutoff())
    connections = Connection.objects.aggregate(
        live=Count("pk", filter=alive), stale=Count("pk", filter=~alive)
    )
    subscriptions = Subscription.objects.aggregate(
        live=Count("pk", filter=Q(connection__last_seen__gte=stale_cutoff())),
        stale=Count("pk", filter=Q(connection__last_seen__lt=stale_cutoff())),
    )
    return {
        "live_connections": connections["live"],
        "stale_connections": connections["stale"],
        "live_subscriptions": subscriptions["live"],
        "stale_subscriptions": subscriptions["stale"],
        "stale_after": conf.get("STALE_AFTER"),
    }


def disconnect(request: HttpRequest, model_admin: admin.ModelAdmin, connections: Any) -> None:
    """Close ``connections`` (a Connection queryset) wherever they are held, one channel-layer
    message per holding process, and tell the user what was asked."""
    targets: dict[str, list[str]] = defaultdict(list)
    unreachable = stale = 0
    cutoff = stale_cutoff()
    for connection_id, channel, last_seen in connections.values_list(
        "connection_id", "channel_name", "last_seen"
    ):
        if not channel:
            unreachable += 1
            continue
        targets[channel].append(connection_id)
        stale += last_seen < cutoff
    asked = sum(len(ids) for ids in targets.values())
    if targets:
        try:
            control.disconnect_sync(targets, code=CloseCode.DISCONNECTED_BY_SERVER)
        except Exception as exc:
            model_admin.message_user(
                request, f"Could not reach the channel layer: {exc}", messages.ERROR
            )
            return
        model_admin.message_user(
            request,
            f"Asked {asked} connection(s) in {len(targets)} process(es) to close (code "
            f"{int(CloseCode.DISCONNECTED_BY_SERVER)}); their rows go at the next flush.",
            messages.SUCCESS,
        )
    if stale:
        model_admin.message_user(
            request,
            f"{stale} of them are stale: their process is probably gone. Remove such rows "
            "with 'manage.py gqlchannels_audit --prune'.",
            messages.WARNING,
        )
    if unreachable:
        model_admin.message_user(
            request,
            f"{unreachable} connection(s) have no hub channel (no channel layer where they "
            "run) and cannot be closed from here.",
            messages.WARNING,
        )


class RegistryAdmin(admin.ModelAdmin):
    """What both registry pages share: read-only rows, facets, the summary, the action."""

    show_facets = admin.ShowFacets.ALWAYS
    actions = ["disconnect_selected"]
    change_list_template = "admin/gqlchannels/change_list.html"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Rows are written by the serving processes only."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Read-only: the detail page is a view page."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Deleting a live row would not close anything; disconnect or prune instead."""
        return False

    def has_disconnect_permission(self, request: HttpRequest) -> bool:
        """Who may use "Disconnect selected"."""
        return request.user.has_perm("gqlchannels.disconnect_connection")

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The change list, with live and stale counts above it."""
        extra_context = {**(extra_context or {}), "gqlchannels_summary": summary()}
        return super().changelist_view(request, extra_context)

    def connections_of(self, queryset: QuerySet[Any]) -> QuerySet[Connection]:
        """The connections behind the selected rows."""
        raise NotImplementedError

    @admin.action(description="Disconnect selected", permissions=["disconnect"])
    def disconnect_selected(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        """Close the selected connections (close code 4000), in any process."""
        disconnect(request, self, self.connections_of(queryset))

    @admin.display(boolean=True, description="alive")
    def alive(self, obj: Any) -> bool:
        """Whether the holding process sent a heartbeat within ``STALE_AFTER``."""
        connection = obj if isinstance(obj, Connection) else obj.connection
        return not connection.is_stale()


class SubscriptionInline(admin.TabularInline):
    """The running operations of a connection, on its detail page."""

    model = Subscription
    fields = ("operation_id", "operation_name", "operation_type", "topics", "started_at")
    readonly_fields = fields
    extra = 0
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Read-only."""
        return False


@admin.register(Connection)
class ConnectionAdmin(RegistryAdmin):
    """Open connections: who, from where, over which protocol, in which process."""

    list_display = (
        "short_id",
        "who",
        "protocol",
        "remote_address",
        "server_id",
        "operations",
        "age",
        "last_seen",
        "alive",
    )
    list_filter = (HeartbeatFilter, "protocol")
    list_select_related = ("user",)
    search_fields = (
        "connection_id",
        f"user__{_USERNAME}",
        "channel_name",
        "server_id",
        "subscriptions__operation_name",
        "subscriptions__topics",
    )
    fields = (
        "connection_id",
        "who",
        "protocol",
        "remote_address",
        "user_agent",
        "server_id",
        "channel_name",
        "connected_at",
        "last_seen",
        "alive",
    )
    readonly_fields = fields
    inlines = [SubscriptionInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Connection]:
        """Connections with the number of their running operations."""
        return super().get_queryset(request).annotate(operation_count=Count("subscriptions"))

    def connections_of(self, queryset: QuerySet[Any]) -> QuerySet[Connection]:
        """The selected connections themselves."""
        return queryset

    @admin.display(description="connection", ordering="connection_id")
    def short_id(self, obj: Connection) -> str:
        """The first characters of the id (enough to tell rows apart)."""
        return obj.connection_id[:12]

    @admin.display(description="user", ordering=f"user__{_USERNAME}")
    def who(self, obj: Connection) -> str:
        """The user, or "anonymous"."""
        return str(obj.user) if obj.user_id else "anonymous"

    @admin.display(description="operations", ordering="operation_count")
    def operations(self, obj: Connection) -> int:
        """How many operations run on it."""
        return getattr(obj, "operation_count", 0)

    @admin.display(description="age", ordering="connected_at")
    def age(self, obj: Connection) -> str:
        """How long it has been open."""
        return timesince(obj.connected_at, timezone.now())


@admin.register(Subscription)
class SubscriptionAdmin(RegistryAdmin):
    """Running operations (mostly subscriptions): what, for whom, listening to which topics."""

    list_display = (
        "operation",
        "operation_type",
        "who",
        "topic_list",
        "protocol",
        "age",
        "alive",
    )
    list_filter = (SubscriptionHeartbeatFilter, "connection__protocol", "operation_type")
    list_select_related = ("connection", "connection__user")
    search_fields = (
        f"connection__user__{_USERNAME}",
        "operation_name",
        "operation_id",
        "topics",
        "connection__channel_name",
    )
    fields = (
        "connection_link",
        "who",
        "operation_id",
        "operation_name",
        "operation_type",
        "topic_list",
        "started_at",
        "alive",
        "document_text",
        "variables_text",
    )
    readonly_fields = fields

    def connections_of(self, queryset: QuerySet[Any]) -> QuerySet[Connection]:
        """The connections the selected operations run on."""
        return Connection.objects.filter(subscriptions__in=queryset).distinct()

    @admin.display(description="operation", ordering="operation_name")
    def operation(self, obj: Subscription) -> str:
        """Its name, else its id."""
        return obj.operation_name or f"#{obj.operation_id}"

    @admin.display(description="user", ordering=f"connection__user__{_USERNAME}")
    def who(self, obj: Subscription) -> str:
        """The connection's user, or "anonymous"."""
        user = obj.connection.user
        return str(user) if user is not None else "anonymous"

    @admin.display(description="topics", ordering="topics")
    def topic_list(self, obj: Subscription) -> str:
        """Its topics, comma-separated."""
        return ", ".join(split_topics(obj.topics))

    @admin.display(description="protocol", ordering="connection__protocol")
    def protocol(self, obj: Subscription) -> str:
        """The connection's subprotocol."""
        return obj.connection.protocol

    @admin.display(description="age", ordering="started_at")
    def age(self, obj: Subscription) -> str:
        """How long it has been running."""
        return timesince(obj.started_at, timezone.now())

    @admin.display(description="connection")
    def connection_link(self, obj: Subscription) -> str:
        """A link to the connection's page."""
        url = reverse("admin:gqlchannels_connection_change", args=[obj.connection_id])
        return format_html('<a href="{}">{}</a>', url, obj.connection)

    @admin.display(description="document")
    def document_text(self, obj: Subscription) -> str:
        """The GraphQL document, as sent, or its beginning when it was longer than
        ``TRACKING_MAX_DOCUMENT_BYTES``."""
        return _stored_text(obj.document, "TRACKING_MAX_DOCUMENT_BYTES")

    @admin.display(description="variables (secrets redacted)")
    def variables_text(self, obj: Subscription) -> str:
        """The variables, with secret-looking keys redacted before they were stored; the
        beginning of their JSON text when it was longer than ``TRACKING_MAX_VARIABLES_BYTES``."""
        if is_cut(obj.variables):
            return _stored_text(obj.variables, "TRACKING_MAX_VARIABLES_BYTES")
        text = json.dumps(obj.variables, indent=2, sort_keys=True, ensure_ascii=False)
        return format_html("<pre>{}</pre>", text)


def _stored_text(text: str, cap: str) -> str:
    """``text`` preformatted, after a note saying so when the registry cut it to ``cap``."""
    if not is_cut(text):
        return format_html("<pre>{}</pre>", text)
    return format_html(
        '<p class="gqlchannels-truncated"><strong>Truncated</strong>: only the first {} bytes '
        "were stored (GQLCHANNELS['{}']).</p><pre>{}</pre>",
        len(text.encode()) - len(CUT_MARKER),
        cap,
        text,
    )
