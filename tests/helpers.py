"""Small helpers that keep the protocol tests reading like a specification."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from channels.testing import WebsocketCommunicator

from gqlchannels.broadcast import group_name
from gqlchannels.consumers import GraphQLWSConsumer
from gqlchannels.hub import get_hub
from tests.schema import schema

TRANSPORT = "graphql-transport-ws"
LEGACY = "graphql-ws"
TIMEOUT = 5.0


def app(consumer: type[GraphQLWSConsumer] = GraphQLWSConsumer, **options: Any) -> Any:
    """The consumer as an ASGI app on the test schema."""
    options.setdefault("schema", schema)
    return consumer.as_asgi(**options)


async def open_socket(
    protocol: str | None = TRANSPORT,
    consumer: type[GraphQLWSConsumer] = GraphQLWSConsumer,
    **options: Any,
) -> WebsocketCommunicator:
    """A connected socket that offered ``protocol`` (nothing sent on it yet)."""
    subprotocols = [protocol] if protocol else []
    communicator = WebsocketCommunicator(
        app(consumer, **options), "/graphql/", subprotocols=subprotocols
    )
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected
    return communicator


async def open_connection(
    protocol: str = TRANSPORT,
    consumer: type[GraphQLWSConsumer] = GraphQLWSConsumer,
    payload: dict[str, Any] | None = None,
    **options: Any,
) -> WebsocketCommunicator:
    """A socket past ``connection_init`` / ``connection_ack`` (and the legacy ``ka``)."""
    communicator = await open_socket(protocol, consumer, **options)
    init: dict[str, Any] = {"type": "connection_init"}
    if payload is not None:
        init["payload"] = payload
    await communicator.send_json_to(init)
    assert (await receive(communicator))["type"] == "connection_ack"
    if protocol == LEGACY and options.get("keepalive_interval", 12.0):
        assert (await receive(communicator)) == {"type": "ka"}
    return communicator


async def receive(communicator: WebsocketCommunicator) -> dict[str, Any]:
    """The next frame, decoded."""
    frame: dict[str, Any] = await communicator.receive_json_from(timeout=TIMEOUT)
    return frame


async def closed_with(communicator: WebsocketCommunicator) -> tuple[int, str]:
    """Wait for the server's close frame; return its code and reason."""
    output = await communicator.receive_output(timeout=TIMEOUT)
    assert output["type"] == "websocket.close", output
    return output.get("code", 1000), output.get("reason", "")


async def start(
    communicator: WebsocketCommunicator,
    protocol: str,
    operation_id: str,
    query: str,
    variables: dict[str, Any] | None = None,
) -> None:
    """Send ``subscribe`` (graphql-transport-ws) or ``start`` (legacy)."""
    payload: dict[str, Any] = {"query": query}
    if variables is not None:
        payload["variables"] = variables
    kind = "subscribe" if protocol == TRANSPORT else "start"
    await communicator.send_json_to({"type": kind, "id": operation_id, "payload": payload})


def result_type(protocol: str) -> str:
    """The message type that carries a result in ``protocol``."""
    return "next" if protocol == TRANSPORT else "data"


async def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Poll ``condition`` every 10 ms until it holds; fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        # Conditions here belong to other components (the hub, the layer) that offer no event.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def wait_listening(topic: str) -> None:
    """Wait until this process's hub has joined ``topic``'s group."""
    await wait_until(lambda: group_name(topic) in get_hub().groups())
