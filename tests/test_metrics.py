"""Metrics and spans, as a specification: each counter moves when its behaviour happens, the
view lets in exactly whom it should, and each operation leaves one span.

The counters are this process's (prometheus-client's default registry, as a project scrapes
it), shared by every test, so each test compares a value before and after what it does. Every
operation and connection is over once the communicator's ``async with`` block has left: the
consumer awaits every operation's ``finally`` before it ends.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from gqlchannels import checks, tracing
from gqlchannels.broadcast import broadcast, group_name
from gqlchannels.consumers import GraphQLWSConsumer
from gqlchannels.faults import LayerFaults
from gqlchannels.hub import get_hub
from gqlchannels.layer import EVENT_TYPE
from gqlchannels.metrics import counters
from gqlchannels.testing import LEGACY_WS, TRANSPORT_WS, GraphQLWSCommunicator, OperationError
from tests.helpers import wait_listening, wait_until
from tests.live_server import PROJECT_ROOT, server_environment
from tests.schema import schema
from tests.test_faults import Switchable, fail

TIMEOUT = 5.0
EVENTS = "subscription($topic: String!) { events(topic: $topic) }"
TOKEN = "scrape-me-0123456789"

application = GraphQLWSConsumer.as_asgi(schema=schema)


def value(name: str, **labels: str) -> float:
    """The current value of one sample of gqlchannels' metrics (0 before its first count)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def client(protocol: str = TRANSPORT_WS, app: Any = application) -> GraphQLWSCommunicator:
    return GraphQLWSCommunicator(app, protocol=protocol, timeout=TIMEOUT)


def test_the_recorder_of_the_test_process_counts_into_prometheus() -> None:
    assert isinstance(counters.recorder, counters.PrometheusRecorder)


# -- connections ------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_connection_is_live_under_its_protocol_until_it_ends(protocol: str) -> None:
    name = "gqlchannels_connections_live"
    before = value(name, protocol=protocol)
    async with client(protocol):
        assert value(name, protocol=protocol) == before + 1
    assert value(name, protocol=protocol) == before


async def test_a_close_by_the_client_is_counted_under_its_code() -> None:
    before = value("gqlchannels_connections_closed_total", code="1001")
    communicator = client()
    async with communicator:
        await communicator.disconnect(code=1001)
    assert value("gqlchannels_connections_closed_total", code="1001") == before + 1


async def test_a_client_close_code_outside_the_known_ones_is_counted_as_other() -> None:
    before = value("gqlchannels_connections_closed_total", code="other")
    communicator = client()
    async with communicator:
        await communicator.disconnect(code=4321)
    assert value("gqlchannels_connections_closed_total", code="other") == before + 1


async def test_a_close_by_the_server_is_counted_under_its_code() -> None:
    before = value("gqlchannels_connections_closed_total", code="4400")
    communicator = client()
    async with communicator:
        await communicator.send_to(text_data="not json")
        output = await communicator.receive_output(TIMEOUT)
        assert (output["type"], output["code"]) == ("websocket.close", 4400)
        await communicator.wait(TIMEOUT)
    assert value("gqlchannels_connections_closed_total", code="4400") == before + 1


# -- operations -------------------------------------------------------------------------------


def ended(kind: str, outcome: str) -> float:
    return value("gqlchannels_operations_ended_total", type=kind, outcome=outcome)


async def test_a_query_that_runs_to_its_end_is_counted_completed() -> None:
    before = ended("query", "completed")
    async with client() as communicator:
        assert await communicator.execute("{ hello }") == {"data": {"hello": "Hello, world!"}}
    assert ended("query", "completed") == before + 1


async def test_a_subscription_completed_by_the_client_is_counted_cancelled_and_leaves() -> None:
    live = ("gqlchannels_operations_live", {"protocol": TRANSPORT_WS, "type": "subscription"})
    before, live_before = ended("subscription", "cancelled"), value(live[0], **live[1])
    async with client() as communicator:
        subscription = communicator.subscribe(EVENTS, {"topic": "metrics-complete"})
        first = asyncio.ensure_future(anext(subscription))
        await wait_listening("metrics-complete")
        assert value(live[0], **live[1]) == live_before + 1
        await broadcast("metrics-complete", "one")
        assert await asyncio.wait_for(first, TIMEOUT) == {"data": {"events": "one"}}
        await subscription.aclose()  # sends complete
        await wait_until(lambda: ended("subscription", "cancelled") == before + 1)
    assert value(live[0], **live[1]) == live_before


async def test_an_operation_that_ends_with_an_error_is_counted_error() -> None:
    before = ended("subscription", "error")
    async with client() as communicator:
        with pytest.raises(OperationError):
            async for _ in communicator.subscribe("subscription { failsAfterOne }"):
                pass
    assert ended("subscription", "error") == before + 1


class Refusing(GraphQLWSConsumer):
    """Refuses every operation in ``on_operation``."""

    async def on_operation(self, operation_id: str, request: Any) -> bool:
        return False


async def test_an_operation_refused_by_on_operation_is_counted_refused() -> None:
    before = ended("query", "refused")
    async with client(app=Refusing.as_asgi(schema=schema)) as communicator:
        with pytest.raises(OperationError, match="refused"):
            await communicator.execute("{ hello }")
    assert ended("query", "refused") == before + 1


async def test_a_subscription_that_falls_behind_is_counted_as_an_overflow() -> None:
    # A send window of 1 holds the operation while the client reads nothing, so events pile
    # up in its buffer of 2 (as in tests/test_broadcast.py).
    before = value("gqlchannels_subscription_overflows_total")
    app = GraphQLWSConsumer.as_asgi(schema=schema, send_window=1)
    with override_settings(GQLCHANNELS={"SUBSCRIPTION_BUFFER_SIZE": 2}):
        async with client(app=app) as communicator:
            subscription = communicator.subscribe(EVENTS, {"topic": "metrics-overflow"})
            first = asyncio.ensure_future(anext(subscription))
            await wait_listening("metrics-overflow")
            for number in range(10):
                await broadcast("metrics-overflow", str(number))
            await wait_until(lambda: value("gqlchannels_subscription_overflows_total") > before)
            await asyncio.wait_for(first, TIMEOUT)
            await subscription.aclose()
    assert value("gqlchannels_subscription_overflows_total") == before + 1


async def test_a_failing_layer_call_is_counted_under_its_method() -> None:
    before = value("gqlchannels_layer_faults_total", method="group_add")
    await fail(LayerFaults(), Switchable(), times=3)
    assert value("gqlchannels_layer_faults_total", method="group_add") == before + 3


# -- deliveries and their lag -----------------------------------------------------------------


async def receive_events(topic: str, subscribers: int, events: list[str]) -> list[list[str]]:
    """Open ``subscribers`` subscriptions to ``topic``, publish ``events``, and return what
    each subscription received (every connection is over on return)."""
    communicators = [client() for _ in range(subscribers)]
    received: list[list[str]] = []
    for communicator in communicators:
        await communicator.__aenter__()
    try:
        streams = [c.subscribe(EVENTS, {"topic": topic}) for c in communicators]
        firsts = [asyncio.ensure_future(anext(stream)) for stream in streams]
        await wait_until(lambda: get_hub().listener_count() == subscribers)
        for text in events:
            await broadcast(topic, text)
        for first, stream in zip(firsts, streams, strict=True):
            texts = [(await asyncio.wait_for(first, TIMEOUT))["data"]["events"]]
            while len(texts) < len(events):
                texts.append((await asyncio.wait_for(anext(stream), TIMEOUT))["data"]["events"])
            received.append(texts)
            await stream.aclose()
    finally:
        for communicator in communicators:
            await communicator.disconnect()
    return received


async def test_each_result_sent_to_each_subscriber_is_one_delivery() -> None:
    before = value("gqlchannels_events_delivered_total")
    received = await receive_events("metrics-deliveries", subscribers=3, events=["a", "b"])
    assert received == [["a", "b"]] * 3
    assert value("gqlchannels_events_delivered_total") == before + 6


async def test_every_delivery_of_a_broadcast_event_observes_its_lag() -> None:
    delivered = value("gqlchannels_events_delivered_total")
    observed = value("gqlchannels_delivery_lag_seconds_count")
    await receive_events("metrics-lag", subscribers=2, events=["a", "b", "c"])
    assert value("gqlchannels_events_delivered_total") - delivered == 6
    assert value("gqlchannels_delivery_lag_seconds_count") - observed == 6


async def test_the_lag_is_measured_from_the_publish_time_on_the_envelope() -> None:
    # An envelope published five seconds ago (as broadcast() makes it, with an older clock
    # reading): its delivery lands above the 2.5 s bucket and within the 10 s one.
    above, within = (
        value("gqlchannels_delivery_lag_seconds_bucket", le=bound) for bound in ("2.5", "10.0")
    )
    async with client() as communicator:
        subscription = communicator.subscribe(EVENTS, {"topic": "metrics-old"})
        first = asyncio.ensure_future(anext(subscription))
        await wait_listening("metrics-old")
        layer = get_channel_layer()
        assert layer is not None
        group = group_name("metrics-old")
        envelope = {"type": EVENT_TYPE, "group": group, "payload": "old"}
        await layer.group_send(group, {**envelope, "sent_at": time.time() - 5})
        assert await asyncio.wait_for(first, TIMEOUT) == {"data": {"events": "old"}}
        await subscription.aclose()
    assert value("gqlchannels_delivery_lag_seconds_bucket", le="2.5") == above
    assert value("gqlchannels_delivery_lag_seconds_bucket", le="10.0") == within + 1


async def test_subscribers_receive_the_payload_without_the_publish_time() -> None:
    query = "subscription($topic: String!) { events(topic: $topic) }"
    async with client() as communicator:
        subscription = communicator.subscribe(query, {"topic": "metrics-payload"})
        first = asyncio.ensure_future(anext(subscription))
        await wait_listening("metrics-payload")
        await broadcast("metrics-payload", "just this")
        assert await asyncio.wait_for(first, TIMEOUT) == {"data": {"events": "just this"}}
        await subscription.aclose()


# -- the view ---------------------------------------------------------------------------------


@pytest.fixture
def staff() -> Client:
    """A test client logged in as an active staff user."""
    user = get_user_model().objects.create_user("operator", is_staff=True)
    browser = Client()
    browser.force_login(user)
    return browser


def test_staff_get_the_metrics_as_prometheus_text(staff: Client) -> None:
    response = staff.get("/metrics/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    names = {family.name for family in text_string_to_metric_families(response.content.decode())}
    assert "gqlchannels_events_delivered" in names


def test_a_scraper_asking_for_openmetrics_gets_openmetrics(staff: Client) -> None:
    response = staff.get("/metrics/", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response["Content-Type"].startswith("application/openmetrics-text")


def test_anonymous_requests_are_forbidden_without_a_token() -> None:
    assert Client().get("/metrics/").status_code == 403


def test_a_user_who_is_not_staff_is_forbidden() -> None:
    browser = Client()
    browser.force_login(get_user_model().objects.create_user("someone"))
    assert browser.get("/metrics/").status_code == 403


@override_settings(GQLCHANNELS={"METRICS_TOKEN": TOKEN})
def test_the_bearer_token_lets_a_scraper_in() -> None:
    response = Client().get("/metrics/", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}"])
@override_settings(GQLCHANNELS={"METRICS_TOKEN": TOKEN})
def test_without_the_right_bearer_token_a_scraper_is_challenged(authorization: str) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = Client().get("/metrics/", headers=headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


@override_settings(GQLCHANNELS={"METRICS_PUBLIC": True})
def test_public_metrics_let_everyone_in() -> None:
    assert Client().get("/metrics/").status_code == 200


@override_settings(GQLCHANNELS={"METRICS_PUBLIC": "yes"})
def test_a_public_setting_that_is_not_true_lets_nobody_in_that_way() -> None:
    assert Client().get("/metrics/").status_code == 403


def test_the_metrics_are_never_cached_and_only_read(staff: Client) -> None:
    assert "no-cache" in staff.get("/metrics/")["Cache-Control"]
    assert staff.post("/metrics/").status_code == 405


@pytest.fixture
def metrics_switched_off() -> Iterator[None]:
    """The recorder as ``METRICS = False`` makes it at start-up; the real one again after."""
    with override_settings(GQLCHANNELS={"METRICS": False}):
        counters.configure()
    try:
        yield
    finally:
        counters.configure()


@pytest.mark.usefixtures("metrics_switched_off")
async def test_with_metrics_off_nothing_is_counted() -> None:
    assert type(counters.recorder) is counters.Recorder
    before = ended("query", "completed")
    async with client() as communicator:
        await communicator.execute("{ hello }")
    assert ended("query", "completed") == before


@pytest.mark.usefixtures("metrics_switched_off")
def test_with_metrics_off_the_view_is_not_found(staff: Client) -> None:
    assert staff.get("/metrics/").status_code == 404


def test_without_prometheus_client_the_recorder_records_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(counters, "prometheus_client", None)
    try:
        assert counters.configure().enabled is False
    finally:
        monkeypatch.undo()
        counters.configure()
    assert counters.recorder.enabled


#: A process in which prometheus-client and OpenTelemetry cannot be imported, as where they are
#: not installed: it serves a query and a subscription, and says what it counted and traced.
WITHOUT_EXTRAS = """
import asyncio, sys

class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("prometheus_client", "opentelemetry"):
            raise ImportError(f"No module named {name!r}")

sys.meta_path.insert(0, Missing())
import django
django.setup()
from gqlchannels import broadcast, tracing
from gqlchannels.consumers import GraphQLWSConsumer
from gqlchannels.metrics import counters
from gqlchannels.testing import GraphQLWSCommunicator
from tests.helpers import wait_listening
from tests.schema import schema

async def main():
    app = GraphQLWSConsumer.as_asgi(schema=schema)
    async with GraphQLWSCommunicator(app, timeout=5.0) as communicator:
        print((await communicator.execute("{ hello }"))["data"]["hello"])
        events = communicator.subscribe(
            "subscription($t: String!) { events(topic: $t) }", {"t": "bare"}
        )
        first = asyncio.ensure_future(anext(events))
        await wait_listening("bare")
        await broadcast("bare", "event")
        print((await asyncio.wait_for(first, 5.0))["data"]["events"])
        await events.aclose()
    print(type(counters.recorder).__name__, type(tracing.operation_span("query", "", "x")).__name__)

asyncio.run(main())
"""


def test_without_prometheus_client_or_opentelemetry_everything_still_works(
    tmp_path: Path,
) -> None:
    env = server_environment(tmp_path / "db.sqlite3", {"GQLCHANNELS_TRACKING": "0"})
    finished = subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRAS],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.split("\n") == ["Hello, world!", "event", "Recorder OperationSpan", ""]


# -- checks -----------------------------------------------------------------------------------


def check_ids(**settings: object) -> list[str]:
    with override_settings(GQLCHANNELS=settings):
        return [message.id or "" for message in checks.check_metrics()]


def test_valid_metrics_settings_pass() -> None:
    assert check_ids(METRICS=False, METRICS_PUBLIC=True, METRICS_TOKEN=TOKEN) == []


def test_metrics_that_is_not_a_bool_is_e022() -> None:
    assert check_ids(METRICS="off") == ["gqlchannels.E022"]


def test_metrics_public_that_is_not_a_bool_is_e023() -> None:
    assert check_ids(METRICS_PUBLIC=1) == ["gqlchannels.E023"]


@pytest.mark.parametrize("token", ["", 12345, b"bytes"])
def test_a_metrics_token_that_is_not_a_non_empty_string_is_e024(token: object) -> None:
    assert check_ids(METRICS_TOKEN=token) == ["gqlchannels.E024"]


# -- spans ------------------------------------------------------------------------------------


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span gqlchannels records meanwhile, through the OpenTelemetry SDK."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.set_tracer_provider(provider)
    try:
        yield exporter
    finally:
        tracing.set_tracer_provider(None)
        provider.shutdown()


def only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    finished = exporter.get_finished_spans()
    assert len(finished) == 1, [span.name for span in finished]
    return finished[0]


async def test_an_operation_is_one_server_span_named_after_its_type(
    spans: InMemorySpanExporter,
) -> None:
    async with client(LEGACY_WS) as communicator:
        await communicator.execute("query Greeting { hello }")
    span = only_span(spans)
    assert (span.name, span.kind) == ("graphql.query", SpanKind.SERVER)
    assert dict(span.attributes or {}) == {
        "graphql.operation.type": "query",
        "graphql.operation.name": "Greeting",
        "gqlchannels.protocol": LEGACY_WS,
        "gqlchannels.outcome": "completed",
    }
    assert span.status.status_code is StatusCode.UNSET


async def test_an_operation_that_ends_with_an_error_has_an_error_span(
    spans: InMemorySpanExporter,
) -> None:
    async with client() as communicator:
        with pytest.raises(OperationError):
            async for _ in communicator.subscribe("subscription { failsAfterOne }"):
                pass
    span = only_span(spans)
    assert span.name == "graphql.subscription"
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["gqlchannels.outcome"] == "error"


async def test_a_subscription_is_one_span_however_many_events_it_delivers(
    spans: InMemorySpanExporter,
) -> None:
    received = await receive_events("metrics-span", subscribers=1, events=["a", "b", "c"])
    assert received == [["a", "b", "c"]]
    span = only_span(spans)
    assert (span.name, (span.attributes or {})["gqlchannels.outcome"]) == (
        "graphql.subscription",
        "cancelled",
    )
