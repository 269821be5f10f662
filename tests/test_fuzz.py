"""Property-based fuzzing: arbitrary JSON in every field of every message, on both protocols.

Each example opens a connection that holds a live subscription, sends it a few frames drawn by
hypothesis (any message type of either protocol, or none, with any JSON, huge integers
included, in ``type``, ``id``, ``payload`` and every field of a request), then leaves. Whatever
was sent:

- no exception escapes the consumer, and nothing is logged at ERROR;
- every answer is one the protocol allows: frames of its server message types, at most one
  close, with a code a client's frame can provoke, and nothing sent after it;
- once the connection has ended, every operation it ran has finished (its ``finally`` ran).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gqlchannels import CloseCode
from tests.helpers import LEGACY, TIMEOUT, TRANSPORT, open_connection, start
from tests.schema import probe

#: What the server may send, per protocol, once the connection is acknowledged (keepalive is
#: off in these connections): message types, and the close codes a client's frame can provoke.
ALLOWED_TYPES = {
    TRANSPORT: {"pong", "next", "error", "complete"},
    LEGACY: {"connection_error", "data", "error", "complete"},
}
ALLOWED_CLOSE_CODES = {
    TRANSPORT: {
        CloseCode.BAD_REQUEST,
        CloseCode.SUBSCRIBER_ALREADY_EXISTS,
        CloseCode.TOO_MANY_INIT_REQUESTS,
    },
    LEGACY: {CloseCode.NORMAL},
}
OPERATION_MESSAGES = {"next", "data", "error", "complete"}

#: The message types each protocol's clients send; then all the others, of either protocol
#: and direction, and one neither knows.
CLIENT_TYPES = {
    TRANSPORT: ["connection_init", "ping", "pong", "subscribe", "complete"],
    LEGACY: ["connection_init", "start", "stop", "connection_terminate"],
}
OTHER_TYPES = ["connection_ack", "connection_error", "ka", "next", "data", "error", "unknown"]
QUERIES = [
    "{ hello }",
    "query ($n: String) { hello(name: $n) }",
    'mutation { echo(text: "x") }',
    "subscription { count(to: 2) }",
    'subscription { waitForever(key: "fuzz") }',
    "{ hello",
    "{ nope }",
]
#: Where a message may carry a value: each is replaced by arbitrary JSON, or left out.
FIELDS = [
    ("type",),
    ("id",),
    ("payload",),
    ("payload", "query"),
    ("payload", "operationName"),
    ("payload", "variables"),
    ("payload", "extensions"),
]

#: Any JSON value: null, booleans, integers of any size, finite floats, text, arrays, objects.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=16,
)
ABSENT = object()


@st.composite
def well_formed_message(draw: st.DrawFn, protocol: str) -> dict[str, Any]:
    """A message a client of ``protocol`` might send (or one of a type it does not send)."""
    own = draw(st.integers(0, 3)) > 0  # three in four: a type this protocol's clients send
    kind = draw(st.sampled_from(CLIENT_TYPES[protocol] if own else OTHER_TYPES))
    # One in four names the live subscription (a duplicate subscribe, a complete or stop).
    operation_id = "live" if draw(st.integers(0, 3)) == 0 else "fuzz"
    message: dict[str, Any] = {"type": kind, "id": operation_id}
    if kind in ("subscribe", "start"):
        names = st.just("n") | st.text(max_size=5)
        variables = draw(st.none() | st.dictionaries(names, json_values, max_size=3))
        message["payload"] = {"query": draw(st.sampled_from(QUERIES)), "variables": variables}
    elif kind in ("connection_init", "ping", "pong"):
        message["payload"] = draw(st.none() | st.just({"token": "t"}))
    return message


@st.composite
def message(draw: st.DrawFn, protocol: str) -> dict[str, Any]:
    """A well-formed message, as it is or with one or two of its fields (FIELDS) replaced
    or left out."""
    drawn = draw(well_formed_message(protocol))
    corrupted = draw(st.booleans())
    for path in draw(st.sets(st.sampled_from(FIELDS), min_size=1, max_size=2)) if corrupted else ():
        *parents, name = path
        container: Any = drawn  # any JSON value, once a parent was corrupted
        for parent in parents:
            container = container.get(parent)
        if not isinstance(container, dict):
            continue  # the payload itself was replaced
        value = draw(st.just(ABSENT) | json_values)
        if value is ABSENT:
            container.pop(name, None)
        else:
            container[name] = value
    return drawn


@st.composite
def frame(draw: st.DrawFn, protocol: str) -> Any:
    """Mostly (five in six) a message; else any JSON value, most likely not an object."""
    if draw(st.integers(0, 5)) > 0:
        return draw(message(protocol))
    return draw(json_values)


def frames(protocol: str) -> st.SearchStrategy[list[Any]]:
    """One to three frames, sent back to back."""
    return st.lists(frame(protocol), min_size=1, max_size=3)


def allowed(protocol: str, output: dict[str, Any]) -> bool:
    """Whether one thing the server sent is a frame or close the protocol allows."""
    if output["type"] == "websocket.close":
        return output.get("code", 1000) in ALLOWED_CLOSE_CODES[protocol]
    frame = json.loads(output["text"])
    if frame.get("type") not in ALLOWED_TYPES[protocol]:
        return False
    if frame["type"] in OPERATION_MESSAGES:
        return isinstance(frame.get("id"), str) and frame["id"] != ""
    if frame["type"] == "connection_error":
        payload = frame.get("payload")
        return isinstance(payload, dict) and isinstance(payload.get("message"), str)
    return True


async def answers_until_barrier(communicator: WebsocketCommunicator, protocol: str) -> list[Any]:
    """Send one last query and collect what the server sends until it has answered it, or
    closed: whatever came before, the socket must never be left open and silent."""
    await start(communicator, protocol, "barrier", "{ hello }")
    outputs = []
    while True:
        output = await communicator.receive_output(timeout=TIMEOUT)
        outputs.append(output)
        if output["type"] == "websocket.close":
            return outputs
        frame = json.loads(output["text"])
        if frame.get("id") == "barrier" and frame.get("type") in ("complete", "error"):
            return outputs


def unread(communicator: WebsocketCommunicator) -> list[dict[str, Any]]:
    """What the server sent and nobody read, once the application has finished."""
    outputs = []
    while not communicator.output_queue.empty():
        outputs.append(communicator.output_queue.get_nowait())
    return outputs


def describe(outputs: list[dict[str, Any]]) -> str:
    """The kinds of answer, for ``--hypothesis-show-statistics``: is the fuzz reaching far?"""
    kinds = {
        f"close {output.get('code')}"
        if output["type"] == "websocket.close"
        else json.loads(output["text"]).get("type")
        for output in outputs
        if "barrier" not in output.get("text", "")
    }
    return ", ".join(sorted(map(str, kinds))) or "no answer"


async def run_example(protocol: str, sent: list[Any], caplog: pytest.LogCaptureFixture) -> None:
    """One example: a connection with a live subscription, the frames, then the client leaves."""
    probe.reset()
    caplog.clear()
    communicator = await open_connection(protocol, keepalive_interval=None)
    await start(communicator, protocol, "live", 'subscription { waitForever(key: "live") }')
    await asyncio.wait_for(probe.started["live"].wait(), TIMEOUT)

    for frame in sent:
        await communicator.send_json_to(frame)
    outputs = await answers_until_barrier(communicator, protocol)
    await communicator.disconnect(timeout=TIMEOUT)  # re-raises what the application raised

    assert not communicator.future.cancelled(), "the consumer did not finish in time"
    assert communicator.future.exception() is None
    outputs += unread(communicator)
    event(describe(outputs))
    assert all(allowed(protocol, output) for output in outputs), outputs
    closes = [i for i, output in enumerate(outputs) if output["type"] == "websocket.close"]
    assert closes in ([], [len(outputs) - 1]), "a second close, or a frame after the close"
    assert probe.running() == []
    errors = [
        record
        for record in caplog.records
        if record.levelno >= logging.ERROR and record.name.startswith(("gqlchannels", "asyncio"))
    ]
    assert errors == []


fuzz_settings = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@fuzz_settings
@given(sent=frames(TRANSPORT))
async def test_transport_arbitrary_frames_get_allowed_answers_and_every_operation_finishes(
    sent, caplog
):
    await run_example(TRANSPORT, sent, caplog)


@fuzz_settings
@given(sent=frames(LEGACY))
async def test_legacy_arbitrary_frames_get_allowed_answers_and_every_operation_finishes(
    sent, caplog
):
    await run_example(LEGACY, sent, caplog)
