"""The live registry: rows follow connections and operations, written off the hot path.

Tests flush explicitly (``tracker.flush()``) where they check what was written, and wait on
``tracker.next_flush()`` (with a timeout) where they check the background flusher itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import OperationalError
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from gqlchannels import signals, tracking
from gqlchannels.consumers import GraphQLWSConsumer
from gqlchannels.control import get_control_plane
from gqlchannels.hub import get_hub
from gqlchannels.models import Connection, Subscription
from gqlchannels.redaction import REDACTED, is_cut
from gqlchannels.tracking import pending, store
from gqlchannels.tracking.batch import Batch, WriteResult
from tests.helpers import (
    LEGACY,
    TIMEOUT,
    TRANSPORT,
    open_connection,
    open_socket,
    receive,
    result_type,
    start,
    wait_listening,
    wait_until,
)

EVENTS = "subscription Events($topic: String!) { events(topic: $topic, key: $topic) }"


@pytest.fixture(autouse=True)
def fast_tracking(settings: Any) -> None:
    """Flush every 50 ms, heartbeat only when a test asks (tests flush explicitly too)."""
    settings.GQLCHANNELS = {
        **settings.GQLCHANNELS,
        "TRACKING_FLUSH_INTERVAL": 0.05,
        "HEARTBEAT_INTERVAL": 3600.0,
    }


@pytest.fixture(autouse=True)
async def no_flusher_left_behind() -> Any:
    """After each test, the loop's flusher must end by itself (no dangling task)."""
    yield
    tracker = tracking.loop_tracker()
    if tracker is not None:
        await asyncio.wait_for(tracker.wait_stopped(), TIMEOUT)
        assert not tracker.running and not tracker.pending()


async def connections() -> list[Connection]:
    return [row async for row in Connection.objects.select_related("user").all()]


async def subscriptions() -> list[Subscription]:
    return [row async for row in Subscription.objects.all()]


async def flushes_until(tracker: tracking.Tracker, condition: Any) -> None:
    """Let the background flusher run (bounded) until ``condition()`` holds after a flush.

    It leaves what is younger than one flush interval for the next one, so a new
    connection is written by the first or the second flush after it opened.
    """
    async with asyncio.timeout(TIMEOUT):
        while True:
            await tracker.next_flush()
            if condition():
                return


async def stopped(tracker: tracking.Tracker) -> None:
    """Wait until the flusher has ended by itself."""
    await asyncio.wait_for(tracker.wait_stopped(), TIMEOUT)
    assert not tracker.running


async def test_a_connection_row_is_written_by_the_flusher_and_deleted_when_it_closes():
    communicator = await open_connection()
    tracker = tracking.get_tracker()
    assert tracker.running
    await flushes_until(tracker, lambda: tracker.connections[_only(tracker)].written)
    [row] = await connections()
    [connection_id] = get_control_plane().connections
    assert row.connection_id == connection_id
    assert row.channel_name == get_hub().channel_name
    assert row.server_id == tracking.server_id()
    assert row.protocol == TRANSPORT
    assert row.user is None

    await communicator.disconnect()
    await stopped(tracker)
    assert await connections() == []


async def test_an_operation_row_has_its_document_name_type_topics_and_redacted_variables():
    communicator = await open_connection()
    variables = {
        "topic": "room:1",
        "input": {"Password": "hunter2", "nested": [{"apiKey": "k"}, {"note": "kept"}]},
        "AUTHORIZATION": "Bearer x",
    }
    await communicator.send_json_to(
        {
            "type": "subscribe",
            "id": "op-1",
            "payload": {"query": EVENTS, "variables": variables},
        }
    )
    await wait_listening("room:1")
    tracker = tracking.get_tracker()
    await tracker.flush()

    [row] = await subscriptions()
    assert row.operation_id == "op-1"
    assert row.operation_name == "Events"
    assert row.operation_type == "subscription"
    assert row.document == EVENTS
    assert row.topic_list == ["room:1"]
    assert row.variables == {
        "topic": "room:1",
        "input": {"Password": REDACTED, "nested": [{"apiKey": REDACTED}, {"note": "kept"}]},
        "AUTHORIZATION": REDACTED,
    }
    await communicator.disconnect()


async def test_an_operation_row_stores_large_variables_cut_to_their_cap():
    communicator = await open_connection()
    variables = {"topic": "room:2", "note": "é" * 150_000}  # 900 KB as JSON in the frame
    await communicator.send_json_to(
        {"type": "subscribe", "id": "big", "payload": {"query": EVENTS, "variables": variables}}
    )
    await wait_listening("room:2")
    await tracking.get_tracker().flush()

    [row] = await subscriptions()
    assert row.variables is not None
    assert is_cut(row.variables) and len(row.variables.encode()) <= 16 * 1024
    assert row.variables.startswith('{"topic":"room:2","note":"ééé')
    await communicator.disconnect()


async def test_completing_an_operation_deletes_its_row_and_keeps_the_connection():
    communicator = await open_connection()
    await start(communicator, TRANSPORT, "w", 'subscription { waitForever(key: "w") }')
    tracker = tracking.get_tracker()
    await _until(lambda: _operation_ids(tracker) == ["w"])
    await tracker.flush()
    assert [row.operation_id for row in await subscriptions()] == ["w"]

    await communicator.send_json_to({"type": "complete", "id": "w"})
    await _until(lambda: _operation_ids(tracker) == [])
    await tracker.flush()
    assert await subscriptions() == []
    assert len(await connections()) == 1
    await communicator.disconnect()


async def test_an_abrupt_disconnect_removes_the_connection_and_its_operations():
    communicator = await open_connection(LEGACY)
    await start(communicator, LEGACY, "a", 'subscription { waitForever(key: "a") }')
    await start(communicator, LEGACY, "b", 'subscription { events(topic: "news") }')
    tracker = tracking.get_tracker()
    await _until(lambda: len(_operation_ids(tracker)) == 2)
    await tracker.flush()
    assert len(await subscriptions()) == 2

    await communicator.disconnect()  # no stop, no close frame: the client is just gone
    await stopped(tracker)
    assert await connections() == []
    assert await subscriptions() == []


async def test_the_flusher_leaves_what_is_younger_than_one_interval_for_the_next_flush():
    communicator = await open_connection()
    tracker = tracking.get_tracker()
    await tracker.flush(min_age=3600)
    assert await connections() == [] and tracker.pending()
    await tracker.flush(min_age=0)
    assert len(await connections()) == 1 and not tracker.pending()
    await communicator.disconnect()


async def test_a_query_that_ends_between_two_flushes_is_never_written(monkeypatch):
    written: list[Batch] = []
    real_write = store.write_batch

    def recording(batch: Batch) -> WriteResult:
        written.append(batch)
        return real_write(batch)

    monkeypatch.setattr(store, "write_batch", recording)
    communicator = await open_connection()
    await start(communicator, TRANSPORT, "q", "{ hello }")
    assert (await receive(communicator))["type"] == result_type(TRANSPORT)
    assert (await receive(communicator))["type"] == "complete"
    await communicator.disconnect()
    await stopped(tracking.get_tracker())
    assert all(not batch.operations and not batch.delete_operations for batch in written)
    assert await subscriptions() == []


async def test_topics_listened_to_after_the_first_write_are_added():
    communicator = await open_connection()
    tracker = tracking.get_tracker()
    await start(communicator, TRANSPORT, "e", EVENTS, {"topic": "late"})
    await wait_listening("late")
    operation = tracker.connections[_only(tracker)].operations["e"]
    operation.topics = frozenset()  # as if ``listen`` had not been reached yet
    await tracker.flush()
    assert (await subscriptions())[0].topics == ""

    tracker.listens(_only(tracker), "e", frozenset({"late"}))  # as ``listen`` tells it
    await tracker.flush()
    assert (await subscriptions())[0].topic_list == ["late"]
    await communicator.disconnect()


class OwnContextConsumer(GraphQLWSConsumer):
    """A project whose ``get_context`` returns an object of its own, with no ``topics``."""

    async def get_context(self, operation_id: str) -> Any:
        return {"user": self.scope.get("user"), "operation": operation_id}


async def test_topics_reach_the_registry_when_get_context_returns_a_projects_own_object():
    communicator = await open_connection(consumer=OwnContextConsumer)
    await start(communicator, TRANSPORT, "own", EVENTS, {"topic": "room:own"})
    await wait_listening("room:own")
    await tracking.get_tracker().flush()

    [row] = await subscriptions()
    assert row.topic_list == ["room:own"]
    await communicator.disconnect()


async def test_the_signals_carry_frozen_records_of_the_connection_and_the_operation():
    seen: dict[str, Any] = {}

    def keep(signal_name: str) -> Any:
        def receiver(sender: Any, record: Any, **kwargs: Any) -> None:
            seen[signal_name] = record

        return receiver

    opened, started = keep("opened"), keep("started")
    signals.connection_opened.connect(opened)
    signals.operation_started.connect(started)
    try:
        communicator = await open_connection()
        await start(communicator, TRANSPORT, "r", EVENTS, {"topic": "records"})
        await wait_listening("records")
    finally:
        signals.connection_opened.disconnect(opened)
        signals.operation_started.disconnect(started)

    connection, operation = seen["opened"], seen["started"]
    assert isinstance(connection, tracking.ConnectionRecord)
    assert connection.channel_name == get_hub().channel_name
    assert (connection.protocol, connection.server_id) == (TRANSPORT, tracking.server_id())
    assert isinstance(operation, tracking.OperationRecord)
    assert (operation.connection_id, operation.operation_id) == (connection.connection_id, "r")
    assert (operation.operation_type, operation.operation_name) == ("subscription", "Events")
    with pytest.raises(dataclasses.FrozenInstanceError):
        operation.document = "changed"  # type: ignore[misc]
    await communicator.disconnect()


class LoginConsumer(GraphQLWSConsumer):
    """Logs the connection in as ``payload["username"]`` on ``connection_init``."""

    async def on_connect(self, payload: dict[str, Any]) -> None:
        username = payload.get("username")
        if username:
            # The stub admits only AuthMiddleware's lazy user; a consumer may set a real one.
            self.scope["user"] = await get_user_model().objects.aget(username=username)  # type: ignore[typeddict-item]


async def test_a_user_set_by_on_connect_after_the_first_write_is_recorded():
    user = await get_user_model().objects.acreate(username="ada")
    communicator = await open_socket(consumer=LoginConsumer)
    tracker = tracking.get_tracker()
    await tracker.flush()
    assert (await connections())[0].user is None

    await communicator.send_json_to({"type": "connection_init", "payload": {"username": "ada"}})
    assert (await receive(communicator))["type"] == "connection_ack"
    await tracker.flush()
    assert (await connections())[0].user == user
    await communicator.disconnect()


async def test_a_failing_database_never_breaks_the_socket_and_the_registry_catches_up(
    monkeypatch, caplog
):
    failures = 3
    real_write = store.write_batch

    def flaky(batch: Batch) -> WriteResult:
        nonlocal failures
        if failures:
            failures -= 1
            raise OperationalError("database is locked")
        return real_write(batch)

    monkeypatch.setattr(store, "write_batch", flaky)
    caplog.set_level(logging.WARNING, logger="gqlchannels.tracking")
    communicator = await open_connection()
    tracker = tracking.get_tracker()
    await start(communicator, TRANSPORT, "c", "subscription { count(to: 2, pause: 0.1) }")
    await flushes_until(tracker, lambda: failures == 0)
    assert await connections() == []  # nothing written yet...

    assert (await receive(communicator))["payload"] == {"data": {"count": 1}}
    await communicator.send_json_to({"type": "ping"})
    frames = [await receive(communicator) for _ in range(3)]
    assert {"type": "pong"} in frames  # ...and the socket never noticed

    await start(communicator, TRANSPORT, "w", 'subscription { waitForever(key: "w") }')
    await _until(lambda: "w" in _operation_ids(tracker))
    await tracker.flush()
    assert len(await connections()) == 1
    assert [row.operation_id for row in await subscriptions()] == ["w"]
    messages = [record.getMessage() for record in caplog.records]
    assert sum("Could not write" in message for message in messages) == 1
    assert sum("written again after 3 failed" in message for message in messages) == 1
    await communicator.disconnect()
    await stopped(tracker)
    assert await connections() == []


async def test_a_long_outage_drops_pending_deletes_and_resynchronises_afterwards(
    monkeypatch, caplog
):
    """Memory stays bounded while the database is down: past MAX_PENDING_DELETES the
    deletes are dropped, and the next successful write removes every row of the process
    that is not live."""
    monkeypatch.setattr(pending, "MAX_PENDING_DELETES", 2)
    kept = await open_connection()
    tracker = tracking.get_tracker()
    leaving = [await open_connection() for _ in range(3)]
    await tracker.flush()
    assert len(await connections()) == 4
    kept_id = next(iter(tracker.connections))

    real_write = store.write_batch
    down = True

    def outage(batch: Batch) -> WriteResult:
        if down:
            raise OperationalError("server closed the connection unexpectedly")
        return real_write(batch)

    monkeypatch.setattr(store, "write_batch", outage)
    for communicator in leaving:
        await communicator.disconnect()
        await tracker.flush()
    assert len(await connections()) == 4  # nothing could be deleted...
    assert not tracker.pending()  # ...and nothing is held in memory for it
    assert "resynchronised" in caplog.text

    down = False
    await tracker.flush()
    assert [row.connection_id for row in await connections()] == [kept_id]
    await kept.disconnect()


async def test_rows_that_went_missing_are_written_again_after_the_heartbeat():
    communicator = await open_connection()
    await start(communicator, TRANSPORT, "w", 'subscription { waitForever(key: "w") }')
    tracker = tracking.get_tracker()
    await _until(lambda: _operation_ids(tracker) == ["w"])
    await tracker.flush()
    [before] = await connections()

    await Connection.objects.all().adelete()  # e.g. pruned by a wrong --stale-after
    await tracker.flush(heartbeat=True)  # notices, and queues them again
    await tracker.flush()
    [after] = await connections()
    assert after.connection_id == before.connection_id
    assert [row.operation_id for row in await subscriptions()] == ["w"]
    await communicator.disconnect()


async def test_the_heartbeat_refreshes_last_seen():
    communicator = await open_connection()
    tracker = tracking.get_tracker()
    await tracker.flush()
    [before] = await connections()
    await asyncio.sleep(0.01)  # let the clock move past the first write's timestamp
    await tracker.flush(heartbeat=True)
    [after] = await connections()
    assert after.last_seen > before.last_seen
    await communicator.disconnect()


async def test_a_legacy_start_that_reuses_a_running_id_replaces_its_row():
    communicator = await open_connection(LEGACY)
    tracker = tracking.get_tracker()
    await start(communicator, LEGACY, "1", 'subscription { waitForever(key: "old") }')
    await _until(lambda: _operation_ids(tracker) == ["1"])
    await tracker.flush()
    await start(communicator, LEGACY, "1", 'subscription { waitForever(key: "new") }')
    await _until(lambda: "new" in _documents(tracker))
    await tracker.flush()
    [row] = await subscriptions()
    assert '"new"' in row.document

    await communicator.send_json_to({"type": "stop", "id": "1"})
    await _until(lambda: _operation_ids(tracker) == [])
    await tracker.flush()
    assert await subscriptions() == []
    await communicator.disconnect()


async def test_tracking_off_writes_nothing(settings):
    settings.GQLCHANNELS = {**settings.GQLCHANNELS, "TRACKING": False}
    communicator = await open_connection()
    assert tracking.loop_tracker() is None
    await communicator.disconnect()
    assert await connections() == []


async def test_the_flusher_ends_with_the_last_connection_and_restarts_with_the_next():
    first = await open_connection()
    tracker = tracking.get_tracker()
    await first.disconnect()
    await stopped(tracker)
    second = await open_connection()
    assert tracker.running
    await tracker.flush()
    assert len(await connections()) == 1
    await second.disconnect()
    await stopped(tracker)


def test_one_refused_row_does_not_keep_the_others_out():
    """After repeated failures rows are inserted one by one: a row the database refuses
    (here, variables that cannot be stored as JSON) is reported, and the others are written."""
    now = timezone.now()
    connection = {
        "connection_id": "c1",
        "channel_name": "",
        "server_id": "test:1:x",
        "user": None,
        "protocol": TRANSPORT,
        "connected_at": now,
        "last_seen": now,
    }
    good = {"id": uuid.uuid4(), "connection_id": "c1", "operation_id": "good", "started_at": now}
    bad = {**good, "id": uuid.uuid4(), "operation_id": "bad", "variables": {"x": object()}}
    batch = Batch(server_id="test:1:x", now=now, connections=[connection], operations=[bad, good])
    batch.isolate = True
    result = store.write_batch(batch)
    assert result.refused_operations == {bad["id"]}
    assert list(Subscription.objects.values_list("operation_id", flat=True)) == ["good"]


def test_a_heartbeat_is_one_update_for_the_whole_process():
    now = timezone.now()
    rows = [
        Connection(
            connection_id=f"c{number}",
            server_id="test:1:x",
            protocol=TRANSPORT,
            connected_at=now,
            last_seen=now,
        )
        for number in range(50)
    ]
    Connection.objects.bulk_create(rows)
    later = now + timedelta(seconds=5)
    batch = Batch(server_id="test:1:x", now=later, heartbeat=True)
    batch.expected_connections = 50
    with CaptureQueriesContext(db_connection) as queries:
        store.write_batch(batch)
    statements = [q["sql"] for q in queries if not q["sql"].startswith(("BEGIN", "COMMIT"))]
    assert len(statements) == 1 and statements[0].startswith("UPDATE")
    assert Connection.objects.filter(last_seen=later).count() == 50


def test_server_id_names_host_pid_and_a_per_process_token():
    import os

    host, pid, token = tracking.server_id().rsplit(":", 2)
    assert host and int(pid) == os.getpid() and len(token) == 6
    assert tracking.server_id() == tracking.server_id()


# -- helpers -------------------------------------------------------------------------------


def _only(tracker: tracking.Tracker) -> str:
    [connection_id] = tracker.connections
    return connection_id


def _operation_ids(tracker: tracking.Tracker) -> list[str]:
    return sorted(op for c in tracker.connections.values() for op in c.operations)


def _documents(tracker: tracking.Tracker) -> str:
    return " ".join(
        op.record.document for c in tracker.connections.values() for op in c.operations.values()
    )


async def _until(condition: Any) -> None:
    """Wait (bounded) for a condition on the tracker's in-memory state, which the consumer
    changes on its own schedule (the operation task starts on the next loop turn)."""
    await wait_until(condition)


async def test_an_operations_count_of_results_and_last_event_reach_its_row_with_the_heartbeat():
    from gqlchannels import broadcast

    communicator = await open_connection()
    tracker = tracking.get_tracker()
    await start(communicator, TRANSPORT, "e", EVENTS, {"topic": "counted"})
    await wait_listening("counted")
    await tracker.flush()
    [row] = await subscriptions()
    assert (row.events_sent, row.last_event_at) == (0, None)

    for number in range(3):
        await broadcast("counted", f"event {number}")
        assert (await receive(communicator))["type"] == "next"
    await tracker.flush()  # no heartbeat due: the count stays in memory
    [row] = await subscriptions()
    assert row.events_sent == 0

    before = timezone.now()
    await tracker.flush(heartbeat=True)
    [row] = await subscriptions()
    assert row.events_sent == 3
    assert row.last_event_at is not None and row.last_event_at <= timezone.now()
    assert row.last_event_at >= before - timedelta(seconds=1)
    await communicator.disconnect()


async def test_an_unchanged_count_is_not_written_again_at_the_next_heartbeat(monkeypatch):
    from gqlchannels import broadcast

    batches: list[Batch] = []
    write = store.write_batch

    def recording(batch: Batch) -> WriteResult:
        batches.append(batch)
        return write(batch)

    monkeypatch.setattr(store, "write_batch", recording)

    communicator = await open_connection()
    tracker = tracking.get_tracker()
    await start(communicator, TRANSPORT, "e", EVENTS, {"topic": "quiet"})
    await wait_listening("quiet")
    await tracker.flush()
    await broadcast("quiet", "one")
    assert (await receive(communicator))["type"] == "next"
    await tracker.flush(heartbeat=True)
    [row] = await subscriptions()
    assert row.events_sent == 1
    [(count, _last)] = batches[-1].deliveries.values()
    assert count == 1
    await tracker.flush(heartbeat=True)
    assert batches[-1].heartbeat and batches[-1].deliveries == {}
    await communicator.disconnect()
