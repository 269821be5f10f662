"""``gqlchannels.publish_changes``: model changes published once their transaction commits.

Changes are made through the real ORM on the test database (SQLite), from the places real
code makes them: a worker thread (``sync_to_async``, as views and async ORM calls do), a sync
view served by Django's test client, a management command, async code. Events are read the
way a subscription reads them, through ``gqlchannels.listen`` on the in-memory layer. Where
a test expects *nothing*, it publishes a sentinel to the same topic afterwards: events reach
a listener in publish order, so the sentinel arriving first proves nothing was published.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import decimal
import io
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction
from django.test import Client, override_settings

import gqlchannels
from demo_project.chat.models import Message, Room
from gqlchannels.change_data import plain
from gqlchannels.changes import ChangePublisher
from tests.helpers import wait_listening

TIMEOUT = 5.0
SENTINEL = "sentinel"


def room_topic(room_id: int) -> str:
    """The test publisher's topic of a room's messages."""
    return f"changes.room.{room_id}"


def topic_of(message: Message) -> str:
    """The test publisher's topic of a message: its room's."""
    return room_topic(message.room_id)


@pytest.fixture
def publisher() -> Iterator[ChangePublisher[Message]]:
    """Messages published by room id, with every concrete field (the default)."""
    registered = gqlchannels.publish_changes(Message, topic=topic_of, dispatch_uid="test")
    yield registered
    registered.disconnect()


class Subscriber:
    """The events of some topics, read through ``listen`` as a subscription reads them."""

    def __init__(self, *topics: str) -> None:
        self.topics = topics
        self._events: asyncio.Queue[Any] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Listen, and return once this process has joined every topic's group."""
        self._task = asyncio.create_task(self._pump())
        for topic in self.topics:
            await wait_listening(topic)

    async def stop(self) -> None:
        """Stop listening (the listener leaves its groups)."""
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _pump(self) -> None:
        async for event in gqlchannels.listen(None, *self.topics):
            self._events.put_nowait(event)

    async def next(self) -> Any:
        """The next event, within TIMEOUT."""
        async with asyncio.timeout(TIMEOUT):
            return await self._events.get()

    async def nothing_before_sentinel(self, topic: str) -> None:
        """Publish a sentinel to ``topic`` and insist it is the next event."""
        await gqlchannels.broadcast(topic, SENTINEL)
        assert await self.next() == SENTINEL


@pytest.fixture
async def subscribe() -> AsyncIterator[Callable[..., Any]]:
    """``await subscribe(*topics)``: a started ``Subscriber``, stopped after the test."""
    started: list[Subscriber] = []

    async def start(*topics: str) -> Subscriber:
        subscriber = Subscriber(*topics)
        await subscriber.start()
        started.append(subscriber)
        return subscriber

    yield start
    for subscriber in started:
        await subscriber.stop()


def in_thread(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` run in a worker thread, as views and async ORM calls run the ORM."""
    return sync_to_async(function)


@in_thread
def make_room(name: str = "lobby") -> Room:
    return Room.objects.create(name=name)


@in_thread
def make_message(room: Room, text: str = "hello") -> Message:
    return Message.objects.create(room=room, text=text)


def created(message_pk: int) -> Callable[[Any], bool]:
    """Whether an event is the creation of message ``message_pk``."""
    return lambda event: event["type"] == "created" and event["pk"] == message_pk


# -- commit and rollback -----------------------------------------------------------------------


async def test_a_save_outside_a_transaction_is_published_at_once(publisher, subscribe) -> None:
    room = await make_room()
    events = await subscribe(room_topic(room.pk))

    message = await make_message(room, "hello")

    event = await events.next()
    assert event["type"] == "created"
    assert event["model"] == "chat.message"
    assert event["pk"] == message.pk
    assert event["data"]["text"] == "hello"


async def test_a_rolled_back_save_publishes_nothing(publisher, subscribe) -> None:
    room = await make_room()
    topic = room_topic(room.pk)
    events = await subscribe(topic)

    @in_thread
    def rolled_back() -> None:
        with contextlib.suppress(RuntimeError), transaction.atomic():
            Message.objects.create(room=room, text="never")
            raise RuntimeError("roll back")

    await rolled_back()
    assert await sync_to_async(Message.objects.count)() == 0
    await events.nothing_before_sentinel(topic)


async def test_two_updates_in_one_transaction_publish_one_updated_event_after_commit(
    publisher, subscribe
) -> None:
    room = await make_room()
    message = await make_message(room, "first")
    topic = room_topic(room.pk)
    events = await subscribe(topic)

    @in_thread
    def edit_twice() -> None:
        with transaction.atomic():
            message.text = "second"
            message.save()
            message.text = "third"
            message.save()
            gqlchannels.broadcast_sync(topic, "inside the transaction")

    await edit_twice()
    assert await events.next() == "inside the transaction"
    event = await events.next()
    assert (event["type"], event["pk"], event["data"]["text"]) == ("updated", message.pk, "third")
    await events.nothing_before_sentinel(topic)


async def test_created_then_updated_in_one_transaction_publishes_created_with_the_last_state(
    publisher, subscribe
) -> None:
    room = await make_room()
    topic = room_topic(room.pk)
    events = await subscribe(topic)

    @in_thread
    def create_and_edit() -> Message:
        with transaction.atomic():
            message = Message.objects.create(room=room, text="draft")
            message.text = "final"
            message.save()
        return message

    message = await create_and_edit()
    event = await events.next()
    assert (event["type"], event["pk"], event["data"]["text"]) == ("created", message.pk, "final")
    await events.nothing_before_sentinel(topic)


async def test_created_then_deleted_in_one_transaction_publishes_nothing(
    publisher, subscribe
) -> None:
    room = await make_room()
    topic = room_topic(room.pk)
    events = await subscribe(topic)

    @in_thread
    def create_and_delete() -> None:
        with transaction.atomic():
            Message.objects.create(room=room, text="gone").delete()

    await create_and_delete()
    await events.nothing_before_sentinel(topic)


async def test_updated_then_deleted_in_one_transaction_publishes_deleted(
    publisher, subscribe
) -> None:
    room = await make_room()
    message = await make_message(room, "first")
    pk = message.pk
    topic = room_topic(room.pk)
    events = await subscribe(topic)

    @in_thread
    def edit_and_delete() -> None:
        with transaction.atomic():
            message.text = "last words"
            message.save()
            message.delete()

    await edit_and_delete()
    event = await events.next()
    assert (event["type"], event["pk"], event["data"]["text"]) == ("deleted", pk, "last words")
    await events.nothing_before_sentinel(topic)


async def test_a_delete_publishes_deleted_with_the_last_data(publisher, subscribe) -> None:
    room = await make_room()
    message = await make_message(room, "bye")
    pk, created_at = message.pk, message.created_at
    events = await subscribe(room_topic(room.pk))

    await sync_to_async(message.delete)()

    assert await events.next() == {
        "type": "deleted",
        "model": "chat.message",
        "pk": pk,
        "data": {
            "id": pk,
            "room": room.pk,
            "author": None,
            "text": "bye",
            "created_at": created_at.isoformat(),
        },
    }


async def test_a_rolled_back_savepoint_drops_only_its_own_changes(publisher, subscribe) -> None:
    room = await make_room()
    topic = room_topic(room.pk)
    events = await subscribe(topic)

    @in_thread
    def with_failed_savepoint() -> Message:
        with transaction.atomic():
            kept = Message.objects.create(room=room, text="kept")
            with contextlib.suppress(RuntimeError), transaction.atomic():
                kept.text = "edited in the savepoint"
                kept.save()
                Message.objects.create(room=room, text="created in the savepoint")
                raise RuntimeError("roll back the savepoint")
        return kept

    kept = await with_failed_savepoint()
    event = await events.next()
    assert (event["type"], event["pk"], event["data"]["text"]) == ("created", kept.pk, "kept")
    await events.nothing_before_sentinel(topic)


async def test_a_released_savepoint_keeps_its_changes(publisher, subscribe) -> None:
    room = await make_room()
    topic = room_topic(room.pk)
    events = await subscribe(topic)

    @in_thread
    def with_savepoint() -> Message:
        with transaction.atomic():
            message = Message.objects.create(room=room, text="outer")
            with transaction.atomic():
                message.text = "inner"
                message.save()
        return message

    message = await with_savepoint()
    event = await events.next()
    assert (event["type"], event["pk"], event["data"]["text"]) == ("created", message.pk, "inner")
    await events.nothing_before_sentinel(topic)


async def test_a_rolled_back_transaction_leaves_nothing_for_the_next_one(
    publisher, subscribe
) -> None:
    room = await make_room()
    topic = room_topic(room.pk)
    events = await subscribe(topic)

    @in_thread
    def rolled_back_then_committed() -> Message:
        with contextlib.suppress(RuntimeError), transaction.atomic():
            Message.objects.create(room=room, text="rolled back")
            raise RuntimeError("roll back")
        with transaction.atomic():
            return Message.objects.create(room=room, text="committed")

    committed = await rolled_back_then_committed()
    event = await events.next()
    assert (event["pk"], event["data"]["text"]) == (committed.pk, "committed")
    await events.nothing_before_sentinel(topic)


# -- topics ------------------------------------------------------------------------------------


async def test_a_move_between_topics_publishes_deleted_to_the_old_and_created_to_the_new(
    publisher, subscribe
) -> None:
    lobby, garden = await make_room("lobby"), await make_room("garden")
    message = await make_message(lobby, "moving")
    old_topic, new_topic = room_topic(lobby.pk), room_topic(garden.pk)
    old, new = await subscribe(old_topic), await subscribe(new_topic)

    message.room = garden
    await sync_to_async(message.save)()

    gone, arrived = await old.next(), await new.next()
    assert (gone["type"], gone["pk"], gone["data"]["room"]) == ("deleted", message.pk, garden.pk)
    assert (arrived["type"], arrived["pk"]) == ("created", message.pk)
    await old.nothing_before_sentinel(old_topic)
    await new.nothing_before_sentinel(new_topic)


async def test_the_old_topic_is_the_committed_rows_not_the_stale_instances(
    publisher, subscribe
) -> None:
    lobby, garden = await make_room("lobby"), await make_room("garden")
    stale = await make_message(lobby, "moving")
    old_topic, new_topic = room_topic(lobby.pk), room_topic(garden.pk)

    @in_thread
    def move_elsewhere() -> None:
        fresh = Message.objects.get(pk=stale.pk)
        fresh.room = garden
        fresh.save()

    await move_elsewhere()
    events = await subscribe(old_topic, new_topic)
    # The stale instance still says "lobby": saving it moves the row back from the garden.
    stale.text = "back"
    await sync_to_async(stale.save)()

    first, second = await events.next(), await events.next()
    assert (first["type"], second["type"]) == ("deleted", "created")
    await events.nothing_before_sentinel(new_topic)


async def test_an_object_without_a_topic_is_published_once_it_gets_one(subscribe) -> None:
    def drafts_unpublished(message: Message) -> str | None:
        return None if message.text.startswith("draft") else "changes.published"

    registered = gqlchannels.publish_changes(
        Message, topic=drafts_unpublished, dispatch_uid="test-drafts"
    )
    try:
        room = await make_room()
        events = await subscribe("changes.published")
        message = await make_message(room, "draft: hello")
        message.text = "hello"
        await sync_to_async(message.save)()
        event = await events.next()
        assert (event["type"], event["data"]["text"]) == ("created", "hello")
    finally:
        registered.disconnect()


# -- where the change is made ------------------------------------------------------------------


async def test_a_sync_view_publishes_the_change_it_commits(publisher, subscribe) -> None:
    room = await make_room()
    message = await make_message(room, "before")
    events = await subscribe(room_topic(room.pk))

    @in_thread
    def edit_in_the_admin() -> int:
        admin = get_user_model().objects.create_superuser("admin", "admin@example.com", "pw")
        client = Client()
        client.force_login(admin)
        url = f"/admin/chat/message/{message.pk}/change/"
        form = {"room": room.pk, "author": "", "text": "edited in the admin"}
        return client.post(url, form).status_code

    assert await edit_in_the_admin() == 302
    event = await events.next()
    assert (event["type"], event["data"]["text"]) == ("updated", "edited in the admin")


async def test_async_code_publishes_what_it_creates(publisher, subscribe) -> None:
    room = await make_room()
    events = await subscribe(room_topic(room.pk))

    message = await Message.objects.acreate(room=room, text="from async code")

    event = await events.next()
    assert (event["type"], event["pk"]) == ("created", message.pk)


async def test_code_committing_on_a_running_loop_publishes_from_a_task(
    publisher, subscribe, monkeypatch
) -> None:
    room = await make_room()
    events = await subscribe(room_topic(room.pk))
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    message = Message.objects.create(room=room, text="on the loop")

    event = await events.next()
    assert (event["type"], event["pk"]) == ("created", message.pk)


async def test_a_management_command_publishes_what_it_commits(subscribe) -> None:
    users = gqlchannels.publish_changes(
        get_user_model(), topic=lambda user: "changes.users", fields=("username",)
    )
    try:
        events = await subscribe("changes.users")
        await sync_to_async(call_command)("chat_token", "eve", "--create", stdout=io.StringIO())
        event = await events.next()
        assert (event["type"], event["model"], event["data"]) == (
            "created",
            "auth.user",
            {"username": "eve"},
        )
    finally:
        users.disconnect()


# -- failures ----------------------------------------------------------------------------------


async def test_a_layer_failure_is_logged_and_does_not_reach_the_committing_code(
    publisher, caplog
) -> None:
    room = await make_room()
    caplog.set_level(logging.ERROR, logger="gqlchannels.changes")
    with override_settings(GQLCHANNELS={**settings.GQLCHANNELS, "CHANNEL_LAYER": "missing"}):
        message = await make_message(room, "stored anyway")

    assert await sync_to_async(Message.objects.filter(pk=message.pk).exists)()
    about = f"created chat.message pk={message.pk} to 'changes.room.{room.pk}'"
    [record] = [r for r in caplog.records if about in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert record.exc_info is None


async def test_publish_failures_collects_the_changes_that_were_not_published(publisher) -> None:
    room = await make_room()

    @in_thread
    def store() -> tuple[Message, list[Any]]:
        with gqlchannels.publish_failures() as failures:
            message = Message.objects.create(room=room, text="not live")
        return message, failures

    with override_settings(GQLCHANNELS={**settings.GQLCHANNELS, "CHANNEL_LAYER": "missing"}):
        message, failures = await store()

    # The demo's own registration publishes messages too (to "room:<name>").
    [failure] = [failure for failure in failures if failure.topic == room_topic(room.pk)]
    assert (failure.event["type"], failure.event["pk"]) == ("created", message.pk)
    assert isinstance(failure.error, gqlchannels.BroadcastError)


# -- registration and data ---------------------------------------------------------------------


async def test_registering_again_with_the_same_uid_replaces_the_registration(subscribe) -> None:
    first = gqlchannels.publish_changes(Message, topic=topic_of, dispatch_uid="test-twice")
    second = gqlchannels.publish_changes(Message, topic=topic_of, dispatch_uid="test-twice")
    try:
        room = await make_room()
        topic = room_topic(room.pk)
        events = await subscribe(topic)
        await make_message(room)
        assert (await events.next())["type"] == "created"
        await events.nothing_before_sentinel(topic)
    finally:
        first.disconnect()
        second.disconnect()


async def test_a_disconnected_publisher_publishes_nothing(subscribe) -> None:
    gqlchannels.publish_changes(Message, topic=topic_of, dispatch_uid="test-gone").disconnect()
    room = await make_room()
    topic = room_topic(room.pk)
    events = await subscribe(topic)
    await make_message(room)
    await events.nothing_before_sentinel(topic)


async def test_a_publisher_for_another_database_ignores_this_ones_changes(subscribe) -> None:
    elsewhere = gqlchannels.publish_changes(
        Message, topic=topic_of, using="elsewhere", dispatch_uid="test-elsewhere"
    )
    try:
        room = await make_room()
        topic = room_topic(room.pk)
        events = await subscribe(topic)
        await make_message(room)
        await events.nothing_before_sentinel(topic)
    finally:
        elsewhere.disconnect()


def test_fields_must_name_concrete_fields() -> None:
    with pytest.raises(ValueError, match="no concrete field 'messages'"):
        gqlchannels.publish_changes(Room, topic=lambda room: "t", fields=("name", "messages"))


def test_plain_turns_values_into_json_data() -> None:
    moment = datetime.datetime(2026, 12, 1, 12, 30, tzinfo=datetime.UTC)
    ident = uuid.UUID(int=1)
    assert plain(
        {
            "at": moment,
            "day": moment.date(),
            "price": decimal.Decimal("1.50"),
            "id": ident,
            "took": datetime.timedelta(seconds=90),
            "tags": ("a", 1),
        }
    ) == {
        "at": "2026-12-01T12:30:00+00:00",
        "day": "2026-12-01",
        "price": "1.50",
        "id": "00000000-0000-0000-0000-000000000001",
        "took": "P0DT00H01M30S",
        "tags": ["a", 1],
    }
