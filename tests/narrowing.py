"""Typed views of values the tests know more about than their static types say.

Each helper asserts what the test relies on (so a wrong belief fails the test, not just the
type check) and hands back the narrower type, keeping these assertions in one place.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast

from channels.layers import BaseChannelLayer, InMemoryChannelLayer, get_channel_layer

from gqlchannels.protocols.frames import Payload


def in_memory_layer() -> InMemoryChannelLayer:
    """The default channel layer, which the test settings make the in-memory one."""
    layer = get_channel_layer()
    assert isinstance(layer, InMemoryChannelLayer), layer
    return layer


def as_layer(double: object) -> BaseChannelLayer:
    """A layer test double, where a channel layer goes. The doubles wrap a real layer and
    forward to it through ``__getattr__``; BaseChannelLayer is a class, not a protocol, so no
    structural check can see that they are layers."""
    return cast(BaseChannelLayer, double)


async def plain_results(results: AsyncIterator[Payload]) -> list[dict[str, Any]]:
    """Every result of an unshared run: plain dicts (only shared results come pre-encoded)."""
    plain = []
    async for result in results:
        assert isinstance(result, dict), result
        plain.append(result)
    return plain


async def aclose(stream: AsyncIterator[Any]) -> None:
    """Close ``stream``, an async generator that its producer types as an iterator."""
    assert isinstance(stream, AsyncGenerator), stream
    await stream.aclose()
