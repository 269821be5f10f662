"""The benchmark schema for Strawberry: the same fields as ``gqlchannels_schema``, written
the way Strawberry's Channels integration documents (``listen_to_channel`` with groups)."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry
from strawberry.types import Info

from benchmarks.servers.common import TICK_TYPE, live, tick_group


@strawberry.type
class Tick:
    """One event."""

    seq: int
    sent_at: float
    pad: str | None


@strawberry.type
class Query:
    """The small queries."""

    @strawberry.field
    def hello(self) -> str:
        """A constant: the smallest query there is."""
        return "world"

    @strawberry.field
    def live_subscriptions(self) -> int:
        """Subscriptions started in this process whose ``finally`` has not run."""
        return live.live


@strawberry.type
class Subscription:
    """The fan-out subscription."""

    @strawberry.subscription
    async def tick(self, info: Info, topic: str) -> AsyncGenerator[Tick, None]:
        """Every event published to ``topic``; counted live until its ``finally`` runs."""
        live.started += 1
        try:
            consumer = info.context["ws"]
            async with consumer.listen_to_channel(TICK_TYPE, groups=[tick_group(topic)]) as cm:
                async for message in cm:
                    yield Tick(seq=message["seq"], sent_at=message["sentAt"], pad=message["pad"])
        finally:
            live.finished += 1


schema = strawberry.Schema(query=Query, subscription=Subscription)
