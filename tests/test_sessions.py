"""Connections end when their credentials end: logout, deactivation, deletion, a deleted
session, ``disconnect_user`` and an expiry given by ``on_connect`` each close the connections
that act for that user or session (4403; legacy ``connection_error`` first), and nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.apps import apps
from django.contrib.auth.models import User
from django.contrib.auth.signals import user_logged_out
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.db import transaction
from django.test import Client, override_settings

from gqlchannels import CloseCode, sessions
from gqlchannels.consumers import GraphQLWSConsumer
from gqlchannels.control import disconnect_user
from tests.helpers import LEGACY, TIMEOUT, TRANSPORT, app, receive

PROTOCOLS = [TRANSPORT, LEGACY]


async def make_user(username: str) -> User:
    user: User = await sync_to_async(User.objects.create_user)(username, password="pw-" + username)
    return user


async def connected(
    protocol: str,
    user: Any = None,
    session_key: str | None = None,
    consumer: type[GraphQLWSConsumer] = GraphQLWSConsumer,
) -> WebsocketCommunicator:
    """A connection past its ack, acting for ``user`` and the session ``session_key`` (as
    ``AuthMiddlewareStack`` would set them)."""
    communicator = WebsocketCommunicator(
        app(consumer, keepalive_interval=None), "/graphql/", subprotocols=[protocol]
    )
    scope = cast(dict[str, Any], communicator.scope)  # the test scope's type names no user
    if user is not None:
        scope["user"] = user
    if session_key is not None:
        scope["session"] = SessionStore(session_key=session_key)
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected
    await communicator.send_json_to({"type": "connection_init"})
    assert (await receive(communicator))["type"] == "connection_ack"
    return communicator


async def ended_with(communicator: WebsocketCommunicator, protocol: str) -> tuple[int, str]:
    """How the connection's session ended: its close code and reason, after legacy's
    ``connection_error`` (which must carry the same reason)."""
    if protocol == LEGACY:
        frame = await receive(communicator)
        assert frame["type"] == "connection_error", frame
        message = frame["payload"]["message"]
    output = await communicator.receive_output(timeout=TIMEOUT)
    assert output["type"] == "websocket.close", output
    if protocol == LEGACY:
        assert output["reason"] == message
    return output["code"], output["reason"]


async def still_open(communicator: WebsocketCommunicator, protocol: str) -> bool:
    """Whether the connection still answers (a query round trip)."""
    kind = "subscribe" if protocol == TRANSPORT else "start"
    query = {"query": "{ hello }"}
    await communicator.send_json_to({"type": kind, "id": "alive", "payload": query})
    result, end = await receive(communicator), await receive(communicator)
    return result.get("id") == "alive" and end == {"id": "alive", "type": "complete"}


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_disconnect_user_closes_each_of_that_users_connections_with_4403(protocol):
    alice = await make_user("alice")
    first, second = await connected(protocol, alice), await connected(protocol, alice)

    await disconnect_user(alice)

    assert await ended_with(first, protocol) == (CloseCode.FORBIDDEN, "Signed out")
    assert await ended_with(second, protocol) == (CloseCode.FORBIDDEN, "Signed out")


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_disconnect_user_leaves_other_users_connections_open(protocol):
    alice, bob = await make_user("alice"), await make_user("bob")
    alices, bobs, anonymous = (
        await connected(protocol, alice),
        await connected(protocol, bob),
        await connected(protocol),
    )

    await disconnect_user(alice)

    await ended_with(alices, protocol)  # the message was handled: bob's had its turn too
    assert await still_open(bobs, protocol)
    assert await still_open(anonymous, protocol)
    await bobs.disconnect()
    await anonymous.disconnect()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_logging_out_over_http_closes_that_users_connections(protocol):
    alice = await make_user("alice")
    alice.is_staff = True  # the demo routes the admin's logout view, which is for staff
    await alice.asave()
    connection = await connected(protocol, alice)

    def log_in_and_out() -> None:
        browser = Client()
        browser.force_login(alice)
        assert browser.post("/admin/logout/").status_code == 200

    await sync_to_async(log_in_and_out)()

    assert await ended_with(connection, protocol) == (CloseCode.FORBIDDEN, "Signed out")


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_deactivating_a_user_closes_their_connections(protocol):
    alice = await make_user("alice")
    connection = await connected(protocol, alice)

    alice.is_active = False
    await alice.asave()

    assert await ended_with(connection, protocol) == (CloseCode.FORBIDDEN, "Account deactivated")


async def test_saving_an_active_user_closes_nothing():
    alice, bob = await make_user("alice"), await make_user("bob")
    alices, bobs = await connected(TRANSPORT, alice), await connected(TRANSPORT, bob)

    alice.first_name = "Alice"
    await alice.asave()
    bob.is_active = False
    await bob.asave()  # a message after alice's save: once it has closed bob's, alice's was due

    await ended_with(bobs, TRANSPORT)
    assert await still_open(alices, TRANSPORT)
    await alices.disconnect()


async def test_deleting_a_user_closes_their_connections():
    alice = await make_user("alice")
    connection = await connected(TRANSPORT, alice)

    await alice.adelete()

    assert await ended_with(connection, TRANSPORT) == (CloseCode.FORBIDDEN, "Account deleted")


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_deleting_a_session_closes_the_connections_opened_with_it(protocol):
    store = SessionStore()
    await sync_to_async(store.create)()
    other = SessionStore()
    await sync_to_async(other.create)()
    with_session = await connected(protocol, session_key=store.session_key)
    with_other = await connected(protocol, session_key=other.session_key)

    await Session.objects.filter(session_key=store.session_key).adelete()

    assert await ended_with(with_session, protocol) == (CloseCode.FORBIDDEN, "Session ended")
    assert await still_open(with_other, protocol)
    await with_other.disconnect()


async def test_a_rolled_back_deactivation_closes_nothing():
    alice, bob = await make_user("alice"), await make_user("bob")
    alices, bobs = await connected(TRANSPORT, alice), await connected(TRANSPORT, bob)

    def deactivate_then_roll_back() -> None:
        with transaction.atomic():
            alice.is_active = False
            alice.save()
            transaction.set_rollback(True)

    await sync_to_async(deactivate_then_roll_back)()
    bob.is_active = False
    await bob.asave()

    await ended_with(bobs, TRANSPORT)
    assert await still_open(alices, TRANSPORT)
    await alices.disconnect()


class ExpiringConsumer(GraphQLWSConsumer):
    """Gives every connection credentials that expire 0.3 s after ``connection_init``."""

    async def on_connect(self, payload: dict[str, Any]) -> None:
        self.expire_at(time.time() + 0.3)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_connection_closes_when_the_expiry_on_connect_gave_it_passes(protocol):
    connection = await connected(protocol, consumer=ExpiringConsumer)

    assert await still_open(connection, protocol)
    assert await ended_with(connection, protocol) == (CloseCode.FORBIDDEN, "Credentials expired")


@pytest.fixture
def receivers_disconnected() -> Iterator[None]:
    """The session receivers unplugged for a test, plugged back in afterwards."""
    for name in ("logout",):
        user_logged_out.disconnect(dispatch_uid=f"gqlchannels.sessions.{name}")
    yield
    sessions.connect()


def test_with_end_sessions_off_logging_out_is_not_watched(receivers_disconnected):
    with override_settings(GQLCHANNELS={"END_SESSIONS": False}):
        apps.get_app_config("gqlchannels").ready()
    assert not user_logged_out.has_listeners()


def test_with_end_sessions_on_logging_out_is_watched(receivers_disconnected):
    with override_settings(GQLCHANNELS={"END_SESSIONS": True}):
        apps.get_app_config("gqlchannels").ready()
    assert user_logged_out.has_listeners()
