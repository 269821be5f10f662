"""The servers compared, each a Django settings module plus an ASGI application:
gqlchannels (with and without shared results, and with its metrics off), Strawberry and the
floor.

Every server speaks both subprotocols on ``/graphql/`` and answers the same operations:
``subscription { tick(topic: $topic) { seq sentAt pad } }``, ``{ hello }`` and
``{ liveSubscriptions }`` (subscriptions started whose ``finally`` has not run yet). HTTP
``POST /bench/publish`` publishes a batch of events from inside the server process: the only
way to reach subscribers through the in-memory channel layer.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerKind:
    """Where daphne finds one server: its settings module and its ASGI application."""

    name: str
    settings: str
    application: str
    #: Python packages the server needs beyond gqlchannels' own requirements.
    needs: tuple[str, ...] = ()
    #: Whether its database must be migrated before it starts.
    migrate: bool = False


SERVERS: dict[str, ServerKind] = {
    kind.name: kind
    for kind in (
        ServerKind(
            "gqlchannels",
            "benchmarks.servers.gqlchannels_settings",
            "benchmarks.servers.gqlchannels_app:application",
            migrate=True,
        ),
        ServerKind(
            "gqlchannels-unshared",
            "benchmarks.servers.gqlchannels_settings",
            "benchmarks.servers.gqlchannels_app:unshared_application",
            migrate=True,
        ),
        ServerKind(
            "gqlchannels-nometrics",
            "benchmarks.servers.gqlchannels_nometrics_settings",
            "benchmarks.servers.gqlchannels_app:application",
            migrate=True,
        ),
        ServerKind(
            "strawberry",
            "benchmarks.servers.strawberry_settings",
            "benchmarks.servers.strawberry_app:application",
            needs=("strawberry",),
        ),
        ServerKind(
            "floor",
            "benchmarks.servers.floor_settings",
            "benchmarks.servers.floor_app:application",
        ),
    )
}
