"""The demo chat, driven through ``WebsocketCommunicator`` over both subprotocols.

Most tests go through ``demo_project.asgi.application`` (origin check, session auth, routing),
so they exercise what ``daphne`` serves; the rest talk to ``ChatConsumer`` directly.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from unittest import mock

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.management import CommandError, call_command
from django.test import Client, override_settings

from demo_project.asgi import application
from demo_project.chat import tokens
from demo_project.chat.consumers import ChatConsumer
from demo_project.chat.models import Message, Room
from gqlchannels.broadcast import group_name
from gqlchannels.hub import get_hub

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
ORIGIN = (b"origin", b"http://127.0.0.1")
#: Upper bound of every wait on the server, in seconds.
TIMEOUT = 5.0

POST = """
mutation Post($room: String!, $text: String!) {
  postMessage(room: $room, text: $text) { id room author text createdAt }
}
"""
MESSAGE_ADDED = (
    "subscription Added($room: String!) { messageAdded(room: $room) { id room author text } }"
)
MESSAGES = """
query Messages($room: String!, $last: Int) { messages(room: $room, last: $last) { text author } }
"""

both_protocols = pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
db = pytest.mark.django_db(transaction=True)


class ChatClient:
    """One GraphQL-over-WebSocket connection, speaking either subprotocol, with bounded waits."""

    def __init__(self, communicator: WebsocketCommunicator, protocol: str):
        self.communicator = communicator
        self.protocol = protocol
        self._ids = itertools.count(1)

    async def connect(self) -> tuple[bool, Any]:
        """Open the socket; (accepted, subprotocol or close code) as the communicator says."""
        return await self.communicator.connect(timeout=TIMEOUT)

    async def init(self, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send ``connection_init``; return the server's answer (ack, or legacy's error)."""
        await self.send({"type": "connection_init", "payload": payload or {}})
        return await self.receive()

    async def open(self, payload: dict[str, Any] | None = None) -> ChatClient:
        """Connect and initialise, insisting on an acknowledged connection."""
        accepted, subprotocol = await self.connect()
        assert accepted and subprotocol == self.protocol, (accepted, subprotocol)
        answer = await self.init(payload)
        assert answer["type"] == "connection_ack", answer
        return self

    async def send(self, message: dict[str, Any]) -> None:
        """Send one frame."""
        await self.communicator.send_json_to(message)

    async def receive(self) -> dict[str, Any]:
        """The next frame that is not a keepalive (legacy ``ka``, server ``ping`` answered)."""
        while True:
            message: dict[str, Any] = await self.communicator.receive_json_from(timeout=TIMEOUT)
            if message.get("type") == "ka":
                continue
            if message.get("type") == "ping":
                await self.send({"type": "pong"})
                continue
            return message

    async def start(self, query: str, **variables: Any) -> str:
        """Start an operation; return its id."""
        operation_id = str(next(self._ids))
        kind = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        payload = {"query": query, "variables": variables}
        await self.send({"id": operation_id, "type": kind, "payload": payload})
        return operation_id

    async def result(self, operation_id: str) -> dict[str, Any]:
        """The next result (``next`` / ``data`` payload) of ``operation_id``."""
        message = await self.receive()
        assert message.get("id") == operation_id, message
        assert message["type"] in ("next", "data"), message
        payload: dict[str, Any] = message["payload"]
        return payload

    async def error(self, operation_id: str) -> list[dict[str, Any]]:
        """The errors of ``operation_id``: an ``error`` message, or a result with ``errors``."""
        message = await self.receive()
        assert message.get("id") == operation_id, message
        if message["type"] == "error":
            payload = message["payload"]
            return payload if isinstance(payload, list) else [payload]
        assert message["type"] in ("next", "data") and message["payload"].get("errors"), message
        await self.complete(operation_id)
        errors: list[dict[str, Any]] = message["payload"]["errors"]
        return errors

    async def complete(self, operation_id: str) -> None:
        """Expect ``complete`` for ``operation_id``."""
        message = await self.receive()
        assert message == {"id": operation_id, "type": "complete"}, message

    async def execute(self, query: str, **variables: Any) -> dict[str, Any]:
        """Run a query or mutation to its end; return its ``data``, insisting on no errors."""
        operation_id = await self.start(query, **variables)
        payload = await self.result(operation_id)
        assert "errors" not in payload, payload
        await self.complete(operation_id)
        data: dict[str, Any] = payload["data"]
        return data

    async def closed(self) -> int:
        """Expect the server to close the socket; return the close code."""
        while True:
            output = await self.communicator.receive_output(timeout=TIMEOUT)
            if output["type"] == "websocket.close":
                code: int = output.get("code", 1000)
                return code


OpenClient = Callable[..., Awaitable[ChatClient]]


@pytest.fixture
async def client_factory() -> AsyncIterator[Callable[..., ChatClient]]:
    """Makes ``ChatClient``s on the demo's ASGI application, and disconnects them all after."""
    made: list[ChatClient] = []

    def make(
        protocol: str = TRANSPORT_WS,
        *,
        app: Any = application,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> ChatClient:
        communicator = WebsocketCommunicator(
            app,
            "/graphql/",
            headers=[ORIGIN] if headers is None else headers,
            subprotocols=[protocol],
        )
        client = ChatClient(communicator, protocol)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.communicator.disconnect(timeout=TIMEOUT)


@pytest.fixture
def open_client(client_factory: Callable[..., ChatClient]) -> OpenClient:
    """Opens an acknowledged connection: ``await open_client(protocol, init_payload)``."""

    async def open_(protocol: str = TRANSPORT_WS, payload: dict[str, Any] | None = None, **kw: Any):
        return await client_factory(protocol, **kw).open(payload)

    return open_


async def listening(topic: str) -> None:
    """Return once this process's hub has joined ``topic``'s group (a subscription listens)."""
    group = group_name(topic)
    for _ in range(int(TIMEOUT / 0.01)):
        if group in get_hub().groups():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"No subscription listens to {topic!r} after {TIMEOUT}s")


@database_sync_to_async
def create_user(username: str, **fields: Any) -> Any:
    """A user, created from async code."""
    return get_user_model().objects.create_user(username=username, **fields)


# -- messages and subscriptions ----------------------------------------------------------------


@db
@both_protocols
async def test_posted_message_is_stored_and_reaches_subscribers_of_its_room_only(
    protocol: str, open_client: OpenClient
) -> None:
    lobby = await open_client(protocol)
    elsewhere = await open_client(protocol)
    poster = await open_client(protocol)
    lobby_op = await lobby.start(MESSAGE_ADDED, room="lobby")
    elsewhere_op = await elsewhere.start(MESSAGE_ADDED, room="elsewhere")
    await listening("room:lobby")
    await listening("room:elsewhere")

    posted = await poster.execute(POST, room="lobby", text="  hello lobby ")
    message = posted["postMessage"]
    assert message["room"] == "lobby"
    assert message["text"] == "hello lobby"
    assert message["author"] is None
    assert message["createdAt"]

    event = await lobby.result(lobby_op)
    assert event == {
        "data": {
            "messageAdded": {
                "id": message["id"],
                "room": "lobby",
                "author": None,
                "text": "hello lobby",
            }
        }
    }
    # Events reach a subscription in publish order, so if "elsewhere" had received the lobby
    # message, it would come before this one.
    await poster.execute(POST, room="elsewhere", text="hello elsewhere")
    event = await elsewhere.result(elsewhere_op)
    assert event["data"]["messageAdded"]["text"] == "hello elsewhere"

    stored = await poster.execute(MESSAGES, room="lobby")
    assert stored == {"messages": [{"text": "hello lobby", "author": None}]}


@db
async def test_message_added_announces_messages_stored_outside_graphql_but_not_edits(
    open_client: OpenClient,
) -> None:
    lobby = await open_client()
    lobby_op = await lobby.start(MESSAGE_ADDED, room="lobby")
    await listening("room:lobby")

    @database_sync_to_async
    def store_then_edit() -> Message:
        room = Room.objects.create(name="lobby")
        message = Message.objects.create(room=room, text="from a script")
        message.text = "edited"
        message.save()
        return Message.objects.create(room=room, text="second")

    second = await store_then_edit()
    first_event = await lobby.result(lobby_op)
    assert first_event["data"]["messageAdded"]["text"] == "from a script"
    second_event = await lobby.result(lobby_op)
    assert second_event["data"]["messageAdded"] == {
        "id": str(second.pk),
        "room": "lobby",
        "author": None,
        "text": "second",
    }


@db
async def test_messages_returns_the_last_ones_oldest_first(open_client: OpenClient) -> None:
    client = await open_client()
    for text in ("one", "two", "three"):
        await client.execute(POST, room="history", text=text)

    last_two = await client.execute(MESSAGES, room="history", last=2)
    assert [m["text"] for m in last_two["messages"]] == ["two", "three"]
    everything = await client.execute(MESSAGES, room="history")
    assert [m["text"] for m in everything["messages"]] == ["one", "two", "three"]
    assert await client.execute(MESSAGES, room="empty") == {"messages": []}
    rooms = await client.execute("{ rooms { name createdAt } }")
    assert [room["name"] for room in rooms["rooms"]] == ["history"]


@db
@pytest.mark.parametrize(
    ("room", "text", "expected"),
    [
        ("lobby", "", "cannot be empty"),
        ("lobby", "   \n ", "cannot be empty"),
        ("lobby", "x" * 2001, "at most 2000"),
        ("no spaces", "hi", "room name"),
        ("x" * 51, "hi", "room name"),
        ("", "hi", "room name"),
        ("caf\u00e9", "hi", "room name"),
    ],
)
async def test_post_message_refuses_bad_input(
    open_client: OpenClient, room: str, text: str, expected: str
) -> None:
    client = await open_client()
    errors = await client.error(await client.start(POST, room=room, text=text))
    assert expected in errors[0]["message"]
    assert await database_sync_to_async(Message.objects.count)() == 0


@db
async def test_post_message_says_so_when_it_cannot_be_delivered_live(
    open_client: OpenClient,
) -> None:
    client = await open_client()
    with override_settings(GQLCHANNELS={**settings.GQLCHANNELS, "CHANNEL_LAYER": "missing"}):
        errors = await client.error(await client.start(POST, room="lobby", text="hi"))
    assert "could not be delivered live" in errors[0]["message"]
    assert await database_sync_to_async(Message.objects.count)() == 1


@db
async def test_longest_valid_input_is_accepted(open_client: OpenClient) -> None:
    client = await open_client()
    room = "R-_9" + "x" * 46
    data = await client.execute(POST, room=room, text="y" * 2000)
    assert data["postMessage"]["room"] == room
    assert len(data["postMessage"]["text"]) == 2000


@db
async def test_subscription_to_an_invalid_room_is_an_error(open_client: OpenClient) -> None:
    client = await open_client()
    errors = await client.error(await client.start(MESSAGE_ADDED, room="bad room"))
    assert "room name" in errors[0]["message"]


@db
@both_protocols
async def test_countdown_counts_down_to_zero_then_completes(
    protocol: str, open_client: OpenClient
) -> None:
    client = await open_client(protocol)
    operation_id = await client.start("subscription { countdown(from: 1) }")
    assert await client.result(operation_id) == {"data": {"countdown": 1}}
    assert await client.result(operation_id) == {"data": {"countdown": 0}}
    await client.complete(operation_id)


@db
async def test_countdown_refuses_a_negative_start(open_client: OpenClient) -> None:
    client = await open_client()
    errors = await client.error(await client.start("subscription { countdown(from: -1) }"))
    assert "'from'" in errors[0]["message"]


# -- authentication -----------------------------------------------------------------------------


@db
@both_protocols
async def test_valid_token_makes_its_user_the_author(
    protocol: str, open_client: OpenClient
) -> None:
    alice = await create_user("alice")
    client = await open_client(protocol, {"token": tokens.make_token(alice)})
    data = await client.execute(POST, room="lobby", text="signed")
    assert data["postMessage"]["author"] == "alice"
    message = await database_sync_to_async(Message.objects.select_related("author").get)()
    assert message.author == alice


@db
async def test_bad_token_is_rejected_with_4403(client_factory: Callable[..., ChatClient]) -> None:
    client = client_factory(TRANSPORT_WS)
    assert (await client.connect())[0]
    await client.send({"type": "connection_init", "payload": {"token": "forged:token"}})
    assert await client.closed() == 4403


@db
async def test_bad_token_is_rejected_on_legacy_graphql_ws(
    client_factory: Callable[..., ChatClient],
) -> None:
    client = client_factory(LEGACY_WS)
    assert (await client.connect())[0]
    answer = await client.init({"token": "forged:token"})
    assert answer["type"] == "connection_error", answer
    assert await client.closed() == 4403


@db
@pytest.mark.parametrize("case", ["expired", "inactive", "deleted", "not a string", "no user"])
async def test_unusable_tokens_are_rejected(
    client_factory: Callable[..., ChatClient], case: str
) -> None:
    bob = await create_user("bob", is_active=case != "inactive")
    token: Any = tokens.make_token(bob)
    if case == "deleted":
        await database_sync_to_async(bob.delete)()
    elif case == "not a string":
        token = {"user": bob.pk}
    elif case == "no user":
        token = signing.dumps({"id": bob.pk}, salt=tokens.TOKEN_SALT)
    client = client_factory(TRANSPORT_WS)
    assert (await client.connect())[0]
    max_age = -1 if case == "expired" else tokens.TOKEN_MAX_AGE
    with mock.patch.object(tokens, "TOKEN_MAX_AGE", max_age):
        await client.send({"type": "connection_init", "payload": {"token": token}})
        assert await client.closed() == 4403


@db
async def test_a_connection_opened_with_a_token_closes_when_the_token_expires(
    client_factory: Callable[..., ChatClient],
) -> None:
    frank = await create_user("frank")
    with mock.patch.object(tokens, "TOKEN_MAX_AGE", 2):
        token = tokens.make_token(frank)
        client = client_factory(TRANSPORT_WS)
        assert (await client.connect())[0]
        await client.send({"type": "connection_init", "payload": {"token": token}})
        assert (await client.receive())["type"] == "connection_ack"
        assert await client.closed() == 4403


MESSAGE_FEED = "subscription Feed($room: String!) { messageFeed(room: $room, last: 2) { text } }"


@db
@both_protocols
async def test_message_feed_starts_with_the_rooms_latest_messages_then_follows_new_ones(
    protocol: str, open_client: OpenClient
) -> None:
    poster, reader = await open_client(protocol), await open_client(protocol)
    for text in ("one", "two", "three"):
        await poster.execute(POST, room="feed", text=text)

    feed = await reader.start(MESSAGE_FEED, room="feed")
    first = await reader.result(feed)
    await poster.execute(POST, room="feed", text="four")

    assert first == {"data": {"messageFeed": [{"text": "two"}, {"text": "three"}]}}
    assert await reader.result(feed) == {"data": {"messageFeed": [{"text": "four"}]}}


@database_sync_to_async
def session_cookie(user: Any) -> tuple[bytes, bytes]:
    """The ``Cookie`` header of a browser logged in as ``user``."""
    browser = Client()
    browser.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    return (b"cookie", f"{name}={browser.cookies[name].value}".encode())


@db
async def test_without_token_the_session_user_stays(open_client: OpenClient) -> None:
    cookie = await session_cookie(await create_user("carol"))
    client = await open_client(TRANSPORT_WS, headers=[ORIGIN, cookie])
    data = await client.execute(POST, room="lobby", text="from the browser")
    assert data["postMessage"]["author"] == "carol"


@db
async def test_token_replaces_the_session_user(open_client: OpenClient) -> None:
    cookie = await session_cookie(await create_user("carol"))
    dave = await create_user("dave")
    client = await open_client(
        TRANSPORT_WS, {"token": tokens.make_token(dave)}, headers=[ORIGIN, cookie]
    )
    data = await client.execute(POST, room="lobby", text="as dave")
    assert data["postMessage"]["author"] == "dave"


@db
async def test_consumer_without_middleware_accepts_anonymous_posts(
    open_client: OpenClient,
) -> None:
    client = await open_client(TRANSPORT_WS, app=ChatConsumer.as_asgi(), headers=[])
    data = await client.execute(POST, room="lobby", text="no scope user at all")
    assert data["postMessage"]["author"] is None


@db
async def test_missing_origin_is_admitted(client_factory: Callable[..., ChatClient]) -> None:
    # No browser omits Origin, so a socket without one cannot be a cross-site hijack.
    client = client_factory(TRANSPORT_WS, headers=[])
    accepted, _ = await client.connect()
    assert accepted


@db
async def test_foreign_origin_is_refused(client_factory: Callable[..., ChatClient]) -> None:
    client = client_factory(TRANSPORT_WS, headers=[(b"origin", b"https://evil.example")])
    accepted, _ = await client.connect()
    assert not accepted


# -- tokens and the chat_token command ------------------------------------------------------------


@db
def test_chat_token_prints_a_token_for_the_user(capsys: pytest.CaptureFixture[str]) -> None:
    erin = get_user_model().objects.create_user(username="erin")
    call_command("chat_token", "erin")
    token = capsys.readouterr().out.strip()
    assert asyncio.run(tokens.user_for_token(token)) == erin


@db
def test_chat_token_create_makes_the_missing_user(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("chat_token", "frank", "--create")
    token = capsys.readouterr().out.strip()
    user = asyncio.run(tokens.user_for_token(token))
    assert user is not None and user.get_username() == "frank"
    assert not user.has_usable_password()


@db
def test_chat_token_refuses_unknown_and_inactive_users() -> None:
    with pytest.raises(CommandError, match="--create"):
        call_command("chat_token", "nobody")
    get_user_model().objects.create_user(username="gone", is_active=False)
    with pytest.raises(CommandError, match="inactive"):
        call_command("chat_token", "gone")


# -- models and admin -------------------------------------------------------------------------


@db
def test_str_and_admin_pages() -> None:
    admin_user = get_user_model().objects.create_superuser("admin", password="x")
    room = Room.objects.create(name="lobby")
    signed = Message.objects.create(room=room, author=admin_user, text="hello from the admin")
    anonymous = Message.objects.create(room=room, text="hello")
    assert str(room) == "lobby"
    assert str(signed) == "admin in lobby: hello from the admin"
    assert str(anonymous) == "anonymous in lobby: hello"

    browser = Client()
    browser.force_login(admin_user)
    for url in ("/admin/chat/room/?q=lob", "/admin/chat/message/?q=admin"):
        response = browser.get(url)
        assert response.status_code == 200, url
    assert b"hello from the admin" in browser.get("/admin/chat/message/?q=admin").content
