"""What staff can do from the registry's admin beyond reading it: a connection page's
Disconnect button, stopping single operations, and the columns that say how an operation is
doing (ages in seconds under a minute, events delivered, the last event), laid out to fit."""

from __future__ import annotations

from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from gqlchannels import admin_display, tracking
from gqlchannels.control import get_control_plane
from gqlchannels.models import Connection, Subscription
from tests import registry_rows as rows
from tests.helpers import (
    LEGACY,
    TRANSPORT,
    closed_with,
    open_connection,
    receive,
    start,
    wait_listening,
    wait_until,
)

CONNECTIONS = reverse("admin:gqlchannels_connection_changelist")
SUBSCRIPTIONS = reverse("admin:gqlchannels_subscription_changelist")
EVENTS = "subscription Events($topic: String!) { events(topic: $topic, key: $topic) }"


@pytest.fixture(autouse=True)
def fast_passwords(settings: Any) -> None:
    """admin_client's superuser gets a password: hash it cheaply."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def page_of(connection: Connection) -> str:
    return reverse("admin:gqlchannels_connection_change", args=[connection.pk])


def button_of(connection: Connection) -> str:
    return reverse("admin:gqlchannels_connection_disconnect", args=[connection.pk])


def view_only_staff(client: Client) -> Client:
    """``client`` logged in as staff who may view the registry but not disconnect."""
    user = get_user_model().objects.create_user("viewer", is_staff=True)
    for codename in ("view_connection", "view_subscription"):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client.force_login(user)
    return client


# -- the Disconnect button ---------------------------------------------------------------


def test_a_connection_page_has_a_disconnect_button_that_posts_with_a_csrf_token(admin_client):
    connection = rows.connection()
    page = admin_client.get(page_of(connection)).content.decode()
    form = page.split('<li class="gqlchannels-disconnect">', 1)[1].split("</form>", 1)[0]
    assert f'method="post" action="{button_of(connection)}"' in form
    assert 'name="csrfmiddlewaretoken"' in form and ">Disconnect</button>" in form


def test_staff_without_the_disconnect_permission_get_no_button(client):
    connection = rows.connection()
    page = view_only_staff(client).get(page_of(connection)).content.decode()
    assert "gqlchannels-disconnect" not in page


def test_the_disconnect_button_refuses_staff_without_the_permission(client):
    connection = rows.connection()
    assert view_only_staff(client).post(button_of(connection)).status_code == 403


def test_the_disconnect_button_refuses_a_get(admin_client):
    assert admin_client.get(button_of(rows.connection())).status_code == 405


def test_the_disconnect_button_refuses_a_post_without_the_csrf_token(admin_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.post(button_of(rows.connection())).status_code == 403


def test_the_disconnect_button_of_a_connection_that_has_gone_says_so(admin_client):
    connection = rows.connection(save=False)
    response = admin_client.post(button_of(connection), follow=True)
    assert "That connection has already gone." in response.content.decode()


async def test_the_disconnect_button_closes_the_live_connection_with_4000(admin_client):
    closed = await open_connection()
    kept = await open_connection()
    await tracking.get_tracker().flush()
    closed_id, _kept = list(get_control_plane().connections)
    row = await Connection.objects.aget(pk=closed_id)

    response = await sync_to_async(admin_client.post)(button_of(row))
    assert response.status_code == 302 and response["Location"] == CONNECTIONS
    assert (await closed_with(closed))[0] == 4000
    await closed.disconnect()
    await kept.send_json_to({"type": "ping"})
    assert await receive(kept) == {"type": "pong"}
    await kept.disconnect()


# -- stopping single operations ----------------------------------------------------------


@pytest.mark.parametrize("protocol", [TRANSPORT, LEGACY])
async def test_stop_selected_ends_only_the_chosen_operation_and_keeps_its_connection(
    admin_client, protocol
):
    communicator = await open_connection(protocol)
    await start(communicator, protocol, "stop-me", EVENTS, {"topic": "stop-me"})
    await start(communicator, protocol, "keep-me", EVENTS, {"topic": "keep-me"})
    await wait_listening("stop-me")
    await wait_listening("keep-me")
    tracker = tracking.get_tracker()
    await tracker.flush()
    chosen = await Subscription.objects.aget(operation_id="stop-me")

    post = sync_to_async(admin_client.post)
    response = await post(
        SUBSCRIPTIONS, {"action": "stop_selected", "_selected_action": [str(chosen.pk)]}
    )
    assert response.status_code == 302
    assert await receive(communicator) == {"id": "stop-me", "type": "complete"}
    [connection] = tracker.connections.values()
    await wait_until(lambda: list(connection.operations) == ["keep-me"])
    if protocol == TRANSPORT:
        await communicator.send_json_to({"type": "ping"})
        assert await receive(communicator) == {"type": "pong"}
    await communicator.disconnect()


def test_stop_selected_says_how_many_operations_on_how_many_connections(admin_client):
    # No process holds these rows' hub channels: the message is sent, nobody acts on it.
    first, second = rows.connection(), rows.connection()
    selected = [
        str(rows.subscription(first).pk),
        str(rows.subscription(first).pk),
        str(rows.subscription(second).pk),
    ]
    response = admin_client.post(
        SUBSCRIPTIONS, {"action": "stop_selected", "_selected_action": selected}, follow=True
    )
    text = response.content.decode()
    assert "Asked 3 operation(s) on 2 connection(s) in 1 process(es) to stop" in text


def test_the_operations_page_names_what_each_action_does(admin_client):
    rows.subscription(rows.connection())
    page = admin_client.get(SUBSCRIPTIONS).content.decode()
    assert "Stop the selected operations" in page
    assert "Disconnect the connections of the selected operations" in page
    assert ">Disconnect selected<" not in page


# -- ages, events, layout ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 seconds"), (1, "1 second"), (42, "42 seconds"), (59, "59 seconds")],
)
def test_ages_under_a_minute_are_in_seconds(seconds, text):
    now = timezone.now()
    assert admin_display.age(now - timedelta(seconds=seconds), now) == text


def test_ages_of_a_minute_and_more_are_in_minutes():
    now = timezone.now()
    assert admin_display.age(now - timedelta(minutes=3, seconds=5), now) == "3\xa0minutes"


def test_the_connection_list_shows_a_young_connections_age_in_seconds(admin_client):
    connection = rows.connection()
    connection.connected_at = timezone.now() - timedelta(seconds=42)
    connection.save()
    page = admin_client.get(CONNECTIONS).content.decode()
    assert "42 seconds" in page or "43 seconds" in page


def test_the_operations_list_shows_events_delivered_and_the_last_events_age(admin_client):
    row = rows.subscription(rows.connection(), name="Counted")
    row.events_sent = 1234
    row.last_event_at = timezone.now() - timedelta(minutes=2, seconds=1)
    row.save()
    page = admin_client.get(SUBSCRIPTIONS).content.decode()
    cells = ChangeList.of(page)
    assert cells.headers[-3:-1] == ["Events", "Last event"]
    [counted] = cells.rows
    assert counted[-3:-1] == ["1234", "2 minutes"]


def test_an_operation_without_events_shows_a_dash_for_its_last_event(admin_client):
    rows.subscription(rows.connection())
    [listed] = ChangeList.of(admin_client.get(SUBSCRIPTIONS).content.decode()).rows
    assert listed[-3:-1] == ["0", "-"]


def test_both_change_lists_fit_1280_pixels_with_long_values(admin_client):
    user = get_user_model().objects.create_user("u" * 150)
    connection = rows.connection(user=user, server_id="h" * 200 + ":1:abcdef")
    rows.subscription(connection, name="N" * 200, topics=tuple(f"room:{n:04d}" for n in range(50)))
    for url, columns in ((CONNECTIONS, 10), (SUBSCRIPTIONS, 10)):
        table = ChangeList.of(admin_client.get(url).content.decode())
        assert len(table.headers) == columns, table.headers
        for row in table.rows:
            assert len(row) == columns
            widest = max(row, key=len)
            assert len(widest) <= admin_display.CELL_CHARACTERS, widest


class ChangeList(HTMLParser):
    """The header texts and the cell texts of a change list's ``#result_list`` table."""

    def __init__(self) -> None:
        super().__init__()
        self.headers: list[str] = []
        self.rows: list[list[str]] = []
        self._in_table = False
        self._cell: list[str] | None = None
        self._head = False

    @classmethod
    def of(cls, page: str) -> ChangeList:
        parser = cls()
        parser.feed(page)
        return parser

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and ("id", "result_list") in attrs:
            self._in_table = True
        elif self._in_table and tag == "tr":
            self._head = not self.headers
            if not self._head:
                self.rows.append([])
        elif self._in_table and tag in ("th", "td"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_table = False
        elif self._in_table and tag in ("th", "td") and self._cell is not None:
            text = " ".join("".join(self._cell).split())
            (self.headers if self._head else self.rows[-1]).append(text)
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
