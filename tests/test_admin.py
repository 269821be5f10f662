"""The registry's admin pages: lists, filters with facets, search, summary, detail pages,
read-only rows, staff only, and "Disconnect selected" reaching the holding process."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse

from gqlchannels import control, tracking
from gqlchannels.control import get_control_plane
from gqlchannels.models import Connection, Subscription
from gqlchannels.redaction import stored_variables
from tests import registry_rows as rows
from tests.helpers import closed_with, open_connection, receive, wait_listening, wait_until

CONNECTIONS = reverse("admin:gqlchannels_connection_changelist")
SUBSCRIPTIONS = reverse("admin:gqlchannels_subscription_changelist")


@pytest.fixture(autouse=True)
def fast_passwords(settings: Any) -> None:
    """admin_client's superuser gets a password: hash it cheaply."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def registry() -> dict[str, Any]:
    """Two live connections on two servers (one logged in) and a stale one, with operations."""
    alice = get_user_model().objects.create_user("alice")
    live_a = rows.connection(user=alice)
    live_b = rows.connection(
        server_id="host-b:200:bbbbbb", channel_name="gqlchannels.hub.b", protocol="graphql-ws"
    )
    dead = rows.connection(stale=True, server_id="host-c:300:cccccc", channel_name="hub.c")
    return {
        "live_a": live_a,
        "live_b": live_b,
        "dead": dead,
        "chat": rows.subscription(live_a, topics=("room:7",), name="OnMessage"),
        "news": rows.subscription(live_b, topics=("news", "room:7")),
        "query": rows.subscription(live_b, name="Slow", operation_type="query"),
        "ghost": rows.subscription(dead, topics=("room:7",), name="Ghost"),
    }


def listed(response: Any) -> set[str]:
    """Primary keys of the rows on a change list page, as strings."""
    return {str(obj.pk) for obj in response.context["cl"].result_list}


def test_connection_list_shows_user_protocol_server_age_and_alive(admin_client, registry):
    response = admin_client.get(CONNECTIONS)
    assert response.status_code == 200
    assert listed(response) == {registry[k].pk for k in ("live_a", "live_b", "dead")}
    page = response.content.decode()
    for text in ("alice", "anonymous", "graphql-ws", "host-b:200:bbbbbb", "icon-no.svg"):
        assert text in page, text


def test_summary_counts_live_and_stale_above_the_list(admin_client, registry):
    response = admin_client.get(SUBSCRIPTIONS)
    summary = response.context["gqlchannels_summary"]
    assert summary["live_connections"] == 2
    assert summary["live_subscriptions"] == 3
    assert summary["stale_connections"] == 1
    assert summary["stale_subscriptions"] == 1
    assert "<strong>2</strong> live connections" in response.content.decode()


def test_subscription_list_shows_operation_user_topics_and_protocol(admin_client, registry):
    page = admin_client.get(SUBSCRIPTIONS).content.decode()
    for text in ("OnMessage", "alice", "news, room:7", "graphql-transport-ws", "subscription"):
        assert text in page, text


@pytest.mark.parametrize(
    ("url", "query", "expected"),
    [
        (CONNECTIONS, {"heartbeat": "stale"}, {"dead"}),
        (CONNECTIONS, {"heartbeat": "alive"}, {"live_a", "live_b"}),
        (CONNECTIONS, {"protocol": "graphql-ws"}, {"live_b"}),
        (SUBSCRIPTIONS, {"heartbeat": "stale"}, {"ghost"}),
        (SUBSCRIPTIONS, {"operation_type": "query"}, {"query"}),
        (SUBSCRIPTIONS, {"connection__protocol": "graphql-ws"}, {"news", "query"}),
    ],
)
def test_list_filters(admin_client, registry, url, query, expected):
    response = admin_client.get(url, query)
    assert listed(response) == {str(registry[key].pk) for key in expected}


def test_filters_show_facet_counts(admin_client, registry):
    page = admin_client.get(SUBSCRIPTIONS).content.decode()
    assert "alive (3)" in page and "stale (1)" in page
    assert "query (1)" in page and "subscription (3)" in page


@pytest.mark.parametrize(
    ("url", "term", "expected"),
    [
        (SUBSCRIPTIONS, "alice", {"chat"}),
        (SUBSCRIPTIONS, "OnMess", {"chat"}),
        (SUBSCRIPTIONS, "room:7", {"chat", "news", "ghost"}),
        (SUBSCRIPTIONS, "gqlchannels.hub.b", {"news", "query"}),
        (CONNECTIONS, "alice", {"live_a"}),
        (CONNECTIONS, "news", {"live_b"}),
        (CONNECTIONS, "hub.c", {"dead"}),
    ],
)
def test_search(admin_client, registry, url, term, expected):
    response = admin_client.get(url, {"q": term})
    assert listed(response) == {str(registry[key].pk) for key in expected}


def test_rows_are_read_only(admin_client, registry):
    subscription = registry["chat"]
    change = reverse("admin:gqlchannels_subscription_change", args=[subscription.pk])
    assert admin_client.get(reverse("admin:gqlchannels_connection_add")).status_code == 403
    assert admin_client.post(change, {"operation_name": "x"}).status_code == 403
    delete = reverse("admin:gqlchannels_subscription_delete", args=[subscription.pk])
    assert admin_client.get(delete).status_code == 403
    page = admin_client.get(CONNECTIONS).content.decode()
    assert 'value="disconnect_selected"' in page and "delete_selected" not in page


def test_detail_page_shows_the_document_and_the_redacted_variables(admin_client, registry):
    row = rows.subscription(
        registry["live_a"],
        document="subscription Secret($token: String!) { events(topic: $token) }",
        variables={"token": "[redacted]", "room": "lobby"},
    )
    page = admin_client.get(
        reverse("admin:gqlchannels_subscription_change", args=[row.pk])
    ).content.decode()
    assert "<pre>subscription Secret($token: String!) { events(topic: $token) }</pre>" in page
    assert "&quot;token&quot;: &quot;[redacted]&quot;" in page
    assert "lobby" in page and "Save" not in page


def test_connection_detail_page_lists_its_operations(admin_client, registry):
    url = reverse("admin:gqlchannels_connection_change", args=[registry["live_b"].pk])
    page = admin_client.get(url).content.decode()
    assert "Slow" in page and "news" in page


def test_non_staff_users_are_sent_to_the_login_page(client, registry):
    user = get_user_model().objects.create_user("bob", password="pw")
    client.force_login(user)
    for url in (CONNECTIONS, SUBSCRIPTIONS):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


def test_staff_without_the_disconnect_permission_sees_no_action(client, registry):
    user = get_user_model().objects.create_user("carol", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_connection"))
    client.force_login(user)
    response = client.get(CONNECTIONS)
    assert response.status_code == 200
    assert "disconnect_selected" not in response.content.decode()
    user.user_permissions.add(Permission.objects.get(codename="disconnect_connection"))
    assert "disconnect_selected" in client.get(CONNECTIONS).content.decode()


def test_the_action_groups_connections_by_hub_channel(admin_client, registry, monkeypatch):
    calls: list[tuple[dict[str, list[str]], int]] = []
    monkeypatch.setattr(
        control, "disconnect_sync", lambda targets, code: calls.append((targets, code))
    )
    extra = rows.connection()  # another connection of host-a's hub
    selected = [registry["live_a"].pk, registry["live_b"].pk, extra.pk]
    response = admin_client.post(
        CONNECTIONS, {"action": "disconnect_selected", "_selected_action": selected}, follow=True
    )
    [(targets, code)] = calls
    assert code == 4000
    assert {channel: sorted(ids) for channel, ids in targets.items()} == {
        "gqlchannels.hub.a": sorted([registry["live_a"].pk, extra.pk]),
        "gqlchannels.hub.b": [registry["live_b"].pk],
    }
    assert "Asked 3 connection(s) in 2 process(es)" in response.content.decode()


def test_the_disconnect_action_on_operations_says_it_closes_their_connections_and_how_many(
    admin_client, registry, monkeypatch
):
    calls: list[dict[str, list[str]]] = []
    monkeypatch.setattr(control, "disconnect_sync", lambda targets, code: calls.append(targets))
    selected = [str(registry["news"].pk), str(registry["query"].pk), str(registry["ghost"].pk)]
    page = admin_client.get(SUBSCRIPTIONS).content.decode()
    assert "Disconnect the connections of the selected operations" in page
    response = admin_client.post(
        SUBSCRIPTIONS,
        {"action": "disconnect_connections", "_selected_action": selected},
        follow=True,
    )
    assert calls == [{"gqlchannels.hub.b": [registry["live_b"].pk], "hub.c": [registry["dead"].pk]}]
    text = response.content.decode()
    assert "Asked 2 connection(s) in 2 process(es) to close" in text
    assert "1 of them are stale" in text


async def test_disconnect_selected_closes_the_live_connection_with_4000(admin_client):
    closed = await open_connection()
    kept = await open_connection()
    tracker = tracking.get_tracker()
    await tracker.flush()
    closed_id, kept_id = _ids_of(closed, kept)
    assert await Connection.objects.filter(pk__in=[closed_id, kept_id]).acount() == 2

    post = sync_to_async(admin_client.post)
    response = await post(
        CONNECTIONS, {"action": "disconnect_selected", "_selected_action": [closed_id]}
    )
    assert response.status_code == 302
    assert (await closed_with(closed))[0] == 4000
    await closed.disconnect()
    await kept.send_json_to({"type": "ping"})
    assert await receive(kept) == {"type": "pong"}

    await wait_until(lambda: closed_id not in tracker.connections)
    await tracker.flush()
    assert [c.pk async for c in Connection.objects.all()] == [kept_id]
    await kept.disconnect()


async def test_the_detail_page_of_a_tracked_operation_never_shows_its_secrets(admin_client):
    communicator = await open_connection()
    variables = {"topic": "lobby", "credentials": {"user": "u", "password": "hunter2"}}
    query = "subscription S($topic: String!) { events(topic: $topic) }"
    await communicator.send_json_to(
        {"type": "subscribe", "id": "s", "payload": {"query": query, "variables": variables}}
    )
    tracker = tracking.get_tracker()
    await wait_until(lambda: any(c.operations for c in tracker.connections.values()))
    await tracker.flush()
    row = await Subscription.objects.aget()
    url = reverse("admin:gqlchannels_subscription_change", args=[row.pk])
    page = (await sync_to_async(admin_client.get)(url)).content.decode()
    assert "hunter2" not in page and "[redacted]" in page and "lobby" in page
    assert "subscription S($topic: String!)" in page
    await communicator.disconnect()


async def test_a_900_kb_document_is_stored_cut_and_its_page_says_so(admin_client):
    communicator = await open_connection()
    query = 'subscription Big { events(topic: "big") }\n' + ("#" + "x" * 70 + "\n") * 12_700
    assert len(query) > 900_000
    await communicator.send_json_to({"type": "subscribe", "id": "b", "payload": {"query": query}})
    await wait_listening("big")
    await tracking.get_tracker().flush()
    row = await Subscription.objects.aget()
    assert len(row.document.encode()) <= 16 * 1024
    assert row.document.startswith("subscription Big {")
    url = reverse("admin:gqlchannels_subscription_change", args=[row.pk])
    page = (await sync_to_async(admin_client.get)(url)).content.decode()
    assert "<strong>Truncated</strong>: only the first 16372 bytes were stored" in page
    await communicator.disconnect()


def test_the_page_of_an_operation_whose_variables_were_cut_says_so(admin_client, registry):
    row = rows.subscription(registry["live_a"])
    row.variables = stored_variables({"note": "n" * 100}, 50)
    row.save()
    page = admin_client.get(
        reverse("admin:gqlchannels_subscription_change", args=[row.pk])
    ).content.decode()
    assert "only the first 38 bytes were stored (GQLCHANNELS['TRACKING_MAX_VARIABLES_BYTES'])" in (
        page
    )
    assert "{&quot;note&quot;:&quot;nnn" in page


def test_the_page_of_an_operation_stored_whole_says_nothing_was_cut(admin_client, registry):
    url = reverse("admin:gqlchannels_subscription_change", args=[registry["chat"].pk])
    assert "Truncated" not in admin_client.get(url).content.decode()


def _ids_of(*communicators: Any) -> list[str]:
    """The connection ids of ``communicators``, opened in this order (the hub keeps it)."""
    ids = list(get_control_plane().connections)
    assert len(ids) == len(communicators)
    return ids
