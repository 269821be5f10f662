"""Admin pages of the live registry: who is connected, to what, and whether it is alive.

Rows are read-only (the registry belongs to the serving processes). What staff can do goes
through the channel layer to whatever process holds the connection: "Disconnect selected"
and a connection page's Disconnect button close connections with code 4000
(``CloseCode.DISCONNECTED_BY_SERVER``); on the operations page, "Stop the selected
operations" sends each one ``complete`` and leaves its connection open, and "Disconnect the
connections of the selected operations" closes the connections they run on. All of it needs
the ``gqlchannels.disconnect_connection`` permission (superusers have it).
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from . import admin_display, conf, control
from .close_codes import CloseCode
from .models import Connection, RegistryQuerySet, Subscription, split_topics
from .redaction import CUT_MARKER, is_cut

_USERNAME = get_user_model().USERNAME_FIELD


class HeartbeatFilter(admin.SimpleListFilter):
    """Alive (heartbeat within ``STALE_AFTER``) or stale (its process is presumably gone),
    by the registry querysets' one predicate (for connections and operations alike)."""

    title = "heartbeat"
    parameter_name = "heartbeat"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        """The two states."""
        return [("alive", "alive"), ("stale", "stale")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        """Rows in the chosen state (all of them when none is chosen)."""
        assert isinstance(queryset, RegistryQuerySet)  # both registry models' managers
        if self.value() == "alive":
            return queryset.alive()
        if self.value() == "stale":
            return queryset.stale()
        return queryset


def summary() -> dict[str, Any]:
    """The counts shown above both change lists (two aggregate queries)."""
    connections = _live_and_stale(Connection.objects.all())
    subscriptions = _live_and_stale(Subscription.objects.all())
    return {
        "live_connections": connections["live"],
        "stale_connections": connections["stale"],
        "live_subscriptions": subscriptions["live"],
        "stale_subscriptions": subscriptions["stale"],
        "stale_after": conf.get("STALE_AFTER"),
    }


def _live_and_stale(rows: RegistryQuerySet) -> dict[str, int]:
    """How many of ``rows`` are alive and how many stale (one aggregate query)."""
    stale = rows.stale_condition()
    return rows.aggregate(live=Count("pk", filter=~stale), stale=Count("pk", filter=stale))


if TYPE_CHECKING:  # generic in django-stubs, not at run time
    _ModelAdmin = admin.ModelAdmin[Any]
    _TabularInline = admin.TabularInline[Subscription, Connection]
else:
    _ModelAdmin = admin.ModelAdmin
    _TabularInline = admin.TabularInline


def disconnect(request: HttpRequest, model_admin: admin.ModelAdmin[Any], connections: Any) -> None:
    """Close ``connections`` (a Connection queryset) wherever they are held, one channel-layer
    message per holding process, and tell the user what was asked (and how many)."""
    targets: dict[str, list[str]] = defaultdict(list)
    unreachable = 0
    for connection_id, channel in connections.values_list("connection_id", "channel_name"):
        if not channel:
            unreachable += 1
            continue
        targets[channel].append(connection_id)
    stale = connections.exclude(channel_name="").stale().count()
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
    _warn_unreached(
        request,
        model_admin,
        stale,
        unreachable,
        f"{unreachable} connection(s) have no hub channel (no channel layer where they "
        "run) and cannot be closed from here.",
    )


def _warn_unreached(
    request: HttpRequest,
    model_admin: admin.ModelAdmin[Any],
    stale: int,
    unreachable: int,
    unreachable_message: str,
) -> None:
    """What an action could not reach: rows of gone processes, and rows of processes with no
    channel layer (``unreachable_message`` says which kind of row)."""
    if stale:
        model_admin.message_user(
            request,
            f"{stale} of them are stale: their process is probably gone. Remove such rows "
            "with 'manage.py gqlchannels_audit --prune'.",
            messages.WARNING,
        )
    if unreachable:
        model_admin.message_user(request, unreachable_message, messages.WARNING)


def stop_operations(
    request: HttpRequest, model_admin: admin.ModelAdmin[Any], operations: QuerySet[Subscription]
) -> None:
    """End ``operations`` (a Subscription queryset) wherever they run: each gets
    ``complete`` and its connection stays open; one channel-layer message per process."""
    targets: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    unreachable = 0
    rows = operations.values_list("connection_id", "connection__channel_name", "operation_id")
    for connection_id, channel, operation_id in rows:
        if not channel:
            unreachable += 1
            continue
        targets[channel][connection_id].append(operation_id)
    asked = sum(len(ids) for connections in targets.values() for ids in connections.values())
    if targets:
        try:
            control.complete_sync(targets)
        except Exception as exc:
            model_admin.message_user(
                request, f"Could not reach the channel layer: {exc}", messages.ERROR
            )
            return
        connections = sum(len(connections) for connections in targets.values())
        model_admin.message_user(
            request,
            f"Asked {asked} operation(s) on {connections} connection(s) in {len(targets)} "
            "process(es) to stop; each client gets 'complete' and its connection stays open.",
            messages.SUCCESS,
        )
    reachable = operations.exclude(connection__channel_name="")
    assert isinstance(reachable, RegistryQuerySet)  # the operations' manager
    _warn_unreached(
        request,
        model_admin,
        reachable.stale().count(),
        unreachable,
        f"{unreachable} operation(s) run where there is no channel layer and cannot be "
        "stopped from here.",
    )


class RegistryAdmin(_ModelAdmin):
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


class SubscriptionInline(_TabularInline):
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
        "remote",
        "server",
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
    change_form_template = "admin/gqlchannels/connection/change_form.html"

    def get_urls(self) -> list[URLPattern]:
        """The admin's URLs, and the Disconnect button's: ``<id>/disconnect/``."""
        disconnect_url = path(
            "<path:object_id>/disconnect/",
            self.admin_site.admin_view(self.disconnect_view),
            name="gqlchannels_connection_disconnect",
        )
        return [disconnect_url, *super().get_urls()]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The connection's page, with the Disconnect button for who may disconnect."""
        extra_context = dict(extra_context or {})
        if self.has_disconnect_permission(request):
            url = reverse("admin:gqlchannels_connection_disconnect", args=[object_id])
            extra_context["gqlchannels_disconnect_url"] = url
        return super().change_view(request, object_id, form_url, extra_context)

    def disconnect_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The Disconnect button: POST only (CSRF-checked by ``admin_view``), with the
        disconnect permission; closes the connection as "Disconnect selected" does, then
        returns to the list (the row goes at the holding process's next flush)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_disconnect_permission(request):
            raise PermissionDenied
        connections = Connection.objects.filter(pk=object_id)
        if connections.exists():
            disconnect(request, self, connections)
        else:
            self.message_user(request, "That connection has already gone.", messages.INFO)
        return HttpResponseRedirect(reverse("admin:gqlchannels_connection_changelist"))

    def get_queryset(self, request: HttpRequest) -> QuerySet[Connection]:
        """Connections with the number of their running operations."""
        queryset: QuerySet[Connection] = super().get_queryset(request)
        return queryset.annotate(operation_count=Count("subscriptions"))

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
        return admin_display.cell(str(obj.user)) if obj.user_id else "anonymous"

    @admin.display(description="operations", ordering="operation_count")
    def operations(self, obj: Connection) -> int:
        """How many operations run on it."""
        return getattr(obj, "operation_count", 0)

    @admin.display(description="age", ordering="connected_at")
    def age(self, obj: Connection) -> str:
        """How long it has been open ("42 seconds" under a minute)."""
        return admin_display.age(obj.connected_at, timezone.now())

    @admin.display(description="server", ordering="server_id")
    def server(self, obj: Connection) -> str:
        """The serving process (``host:pid:token``), shortened to fit the list."""
        return admin_display.cell(obj.server_id)

    @admin.display(description="remote address", ordering="remote_address")
    def remote(self, obj: Connection) -> str:
        """Where the client connected from, shortened to fit the list."""
        return admin_display.cell(obj.remote_address)


@admin.register(Subscription)
class SubscriptionAdmin(RegistryAdmin):
    """Running operations (mostly subscriptions): what, for whom, listening to which topics."""

    list_display = (
        "operation",
        "operation_type",
        "who",
        "topics_cell",
        "protocol",
        "age",
        "events",
        "last_event",
        "alive",
    )
    actions = ["stop_selected", "disconnect_connections"]
    list_filter = (HeartbeatFilter, "connection__protocol", "operation_type")
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
        "events_sent",
        "last_event_at",
        "alive",
        "document_text",
        "variables_text",
    )
    readonly_fields = fields

    @admin.action(description="Stop the selected operations", permissions=["disconnect"])
    def stop_selected(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        """End the selected operations (each client gets ``complete``), in any process;
        their connections stay open."""
        stop_operations(request, self, queryset)

    @admin.action(
        description="Disconnect the connections of the selected operations",
        permissions=["disconnect"],
    )
    def disconnect_connections(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        """Close the connections the selected operations run on (code 4000), with every
        other operation of theirs; the message says how many connections."""
        disconnect(request, self, self.connections_of(queryset))

    def connections_of(self, queryset: QuerySet[Any]) -> QuerySet[Connection]:
        """The connections the selected operations run on."""
        return Connection.objects.filter(subscriptions__in=queryset).distinct()

    @admin.display(description="operation", ordering="operation_name")
    def operation(self, obj: Subscription) -> str:
        """Its name, else its id (shortened to fit the list)."""
        return admin_display.cell(obj.operation_name or f"#{obj.operation_id}")

    @admin.display(description="user", ordering=f"connection__user__{_USERNAME}")
    def who(self, obj: Subscription) -> str:
        """The connection's user, or "anonymous"."""
        user = obj.connection.user
        return admin_display.cell(str(user)) if user is not None else "anonymous"

    @admin.display(description="topics", ordering="topics")
    def topic_list(self, obj: Subscription) -> str:
        """Its topics, comma-separated (shortened in the list, whole on its page)."""
        return ", ".join(split_topics(obj.topics))

    @admin.display(description="topics", ordering="topics")
    def topics_cell(self, obj: Subscription) -> str:
        """Its topics, comma-separated, shortened to fit the list."""
        return admin_display.cell(self.topic_list(obj))

    @admin.display(description="protocol", ordering="connection__protocol")
    def protocol(self, obj: Subscription) -> str:
        """The connection's subprotocol."""
        return obj.connection.protocol

    @admin.display(description="age", ordering="started_at")
    def age(self, obj: Subscription) -> str:
        """How long it has been running ("42 seconds" under a minute)."""
        return admin_display.age(obj.started_at, timezone.now())

    @admin.display(description="events", ordering="events_sent")
    def events(self, obj: Subscription) -> int:
        """Results it has sent, as of its process's last heartbeat."""
        return obj.events_sent

    @admin.display(description="last event", ordering="last_event_at")
    def last_event(self, obj: Subscription) -> str:
        """How long ago its last result went out (to within a flush interval)."""
        return admin_display.age(obj.last_event_at, timezone.now())

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
            return _stored_text(str(obj.variables), "TRACKING_MAX_VARIABLES_BYTES")
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
