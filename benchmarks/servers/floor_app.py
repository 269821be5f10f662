"""ASGI application of the floor: a bare Channels consumer that does the least any Channels
GraphQL server must do per event.

Each subscription ``group_add``s the connection's own channel (as Strawberry does), and each
group message is forwarded to the socket in the protocol's result shape, with no GraphQL
execution at all. Queries are recognised by their text, not parsed. It is a yardstick for the
cost of Channels and daphne themselves, not a usable server.
"""

from __future__ import annotations

import os
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.servers.floor_settings")
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter  # noqa: E402

from benchmarks.servers.common import apply_gc_policy, control_app, live, tick_group  # noqa: E402
from benchmarks.servers.publish import publish_group  # noqa: E402

try:
    import orjson

    def dumps(value: Any) -> str:
        return orjson.dumps(value).decode()

    loads = orjson.loads
except ImportError:  # pragma: no cover
    import json

    dumps = json.dumps
    loads = json.loads

PROTOCOLS = ("graphql-transport-ws", "graphql-ws")
#: The result message type of each protocol.
RESULT = {"graphql-transport-ws": "next", "graphql-ws": "data"}


class FloorConsumer(AsyncWebsocketConsumer):
    """Both subprotocols, as little of them as the benchmark uses."""

    async def connect(self) -> None:
        """Accept with the first subprotocol the client offers that we speak."""
        offered = self.scope.get("subprotocols") or []
        self.protocol = next((name for name in offered if name in PROTOCOLS), None)
        #: group -> ids of this connection's subscriptions to it
        self.subscriptions: dict[str, set[str]] = {}
        await self.accept(self.protocol)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Answer one client frame."""
        message = loads(text_data or "{}")
        kind = message.get("type")
        if kind == "connection_init":
            await self.send(dumps({"type": "connection_ack"}))
        elif kind == "ping":
            await self.send(dumps({"type": "pong"}))
        elif kind in ("subscribe", "start"):
            await self._operation(message["id"], message.get("payload") or {})
        elif kind in ("complete", "stop"):
            await self._stop(message.get("id"))

    async def _operation(self, operation_id: str, payload: dict[str, Any]) -> None:
        query = payload.get("query", "")
        if query.lstrip().startswith("subscription"):
            group = tick_group((payload.get("variables") or {})["topic"])
            if group not in self.subscriptions:
                await self.channel_layer.group_add(group, self.channel_name)
                self.subscriptions[group] = set()
            self.subscriptions[group].add(operation_id)
            live.started += 1
            return
        data = (
            {"liveSubscriptions": live.live} if "liveSubscriptions" in query else {"hello": "world"}
        )
        await self.send(
            dumps({"id": operation_id, "type": RESULT[self.protocol], "payload": {"data": data}})
        )
        await self.send(dumps({"id": operation_id, "type": "complete"}))

    async def _stop(self, operation_id: Any) -> None:
        for group, ids in list(self.subscriptions.items()):
            if operation_id in ids:
                ids.discard(operation_id)
                live.finished += 1
                if not ids:
                    del self.subscriptions[group]
                    await self.channel_layer.group_discard(group, self.channel_name)

    async def bench_tick(self, message: dict[str, Any]) -> None:
        """Forward one group message to every subscription of this connection to its topic."""
        ids = self.subscriptions.get(tick_group(message["topic"]), ())
        tick = {"seq": message["seq"], "sentAt": message["sentAt"], "pad": message["pad"]}
        for operation_id in ids:
            await self.send(
                dumps(
                    {
                        "id": operation_id,
                        "type": RESULT[self.protocol],
                        "payload": {"data": {"tick": tick}},
                    }
                )
            )

    async def disconnect(self, code: int) -> None:
        """Leave every group; the floor's equivalent of each subscription's ``finally``."""
        for group, ids in self.subscriptions.items():
            live.finished += len(ids)
            await self.channel_layer.group_discard(group, self.channel_name)
        self.subscriptions = {}


application = ProtocolTypeRouter(
    {"http": control_app(publish_group), "websocket": FloorConsumer.as_asgi()}
)
apply_gc_policy()
