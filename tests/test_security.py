"""``gqlchannels.security.OriginValidator`` in front of the real consumer: which sockets it
admits, and that a refused one is closed before it is accepted (a server's HTTP 403)."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator
from django.test import override_settings

from gqlchannels.consumers import GraphQLWSConsumer
from gqlchannels.security import OriginValidator
from tests.schema import schema

TIMEOUT = 5.0

consumer = GraphQLWSConsumer.as_asgi(schema=schema)


async def admitted(origin: str | None, *, require_origin: bool = False) -> bool:
    """Whether a socket with this Origin (None: without one) is accepted."""
    headers = [] if origin is None else [(b"origin", origin.encode())]
    communicator = WebsocketCommunicator(
        OriginValidator(consumer, require_origin=require_origin),
        "/graphql/",
        headers=headers,
        subprotocols=["graphql-transport-ws"],
    )
    accepted, _ = await communicator.connect(timeout=TIMEOUT)
    await communicator.disconnect(timeout=TIMEOUT)
    return accepted


@override_settings(ALLOWED_HOSTS=["example.com"])
async def test_a_socket_without_origin_is_admitted() -> None:
    assert await admitted(None)


@override_settings(ALLOWED_HOSTS=["example.com"])
async def test_an_origin_whose_host_is_allowed_is_admitted() -> None:
    assert await admitted("https://example.com")


@override_settings(ALLOWED_HOSTS=["example.com"])
async def test_the_port_of_an_allowed_origin_does_not_matter() -> None:
    assert await admitted("http://example.com:8000")


@override_settings(ALLOWED_HOSTS=["example.com"])
async def test_a_foreign_origin_is_refused() -> None:
    assert not await admitted("https://evil.example")


@override_settings(ALLOWED_HOSTS=["example.com"])
async def test_a_lookalike_of_an_allowed_host_is_refused() -> None:
    assert not await admitted("https://example.com.evil.example")


@override_settings(ALLOWED_HOSTS=["example.com"])
async def test_an_origin_without_a_host_is_refused() -> None:
    # Sandboxed frames and file:// pages send "null".
    assert not await admitted("null")


@override_settings(ALLOWED_HOSTS=[".example.com"])
async def test_a_dotted_pattern_admits_subdomains() -> None:
    assert await admitted("https://app.example.com")


@override_settings(ALLOWED_HOSTS=["*"])
async def test_a_star_admits_every_origin() -> None:
    assert await admitted("https://anywhere.example")


@override_settings(ALLOWED_HOSTS=[], DEBUG=True)
async def test_debug_without_allowed_hosts_admits_local_origins() -> None:
    assert await admitted("http://localhost:3000")


@override_settings(ALLOWED_HOSTS=[], DEBUG=True)
async def test_debug_without_allowed_hosts_refuses_other_origins() -> None:
    assert not await admitted("http://example.com")


@override_settings(ALLOWED_HOSTS=["example.com"])
async def test_require_origin_refuses_a_socket_without_origin() -> None:
    assert not await admitted(None, require_origin=True)


@override_settings(ALLOWED_HOSTS=["example.com"])
async def test_require_origin_admits_an_allowed_origin() -> None:
    assert await admitted("https://example.com", require_origin=True)


@override_settings(ALLOWED_HOSTS=["example.com"])
async def test_a_refused_socket_is_closed_before_it_is_accepted() -> None:
    communicator = WebsocketCommunicator(
        OriginValidator(consumer), "/graphql/", headers=[(b"origin", b"https://evil.example")]
    )
    await communicator.send_input({"type": "websocket.connect"})
    # A close before accept is what servers answer with HTTP 403.
    assert await communicator.receive_output(TIMEOUT) == {"type": "websocket.close"}
    await communicator.wait(TIMEOUT)


@override_settings(ALLOWED_HOSTS=["example.com"])
async def test_a_refused_origin_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="gqlchannels.security"):
        assert not await admitted("https://evil.example")
    assert "'https://evil.example'" in caplog.text
    assert "ALLOWED_HOSTS" in caplog.text


async def test_other_connection_types_are_not_guarded() -> None:
    async def receive() -> dict[str, str]:
        raise AssertionError("not reached")

    async def send(message: dict[str, str]) -> None:
        raise AssertionError("not reached")

    with pytest.raises(ValueError, match="WebSocket"):
        await OriginValidator(consumer)({"type": "http"}, receive, send)
