"""The ``GQLCHANNELS`` settings dict, with defaults, read on every access.

Reading on access (rather than once at import) keeps ``override_settings`` in tests and
settings changed by the project after import working, the way Django's own settings do.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings

SETTINGS_NAME = "GQLCHANNELS"

DEFAULTS: dict[str, Any] = {
    # Dotted path to a graphql-core GraphQLSchema (or a Strawberry / Graphene schema object),
    # used when the consumer is routed without ``schema=``.
    "SCHEMA": None,
    # Subprotocols the consumer speaks, in the server's order of preference for documentation;
    # negotiation follows the client's order among these.
    "PROTOCOLS": ("graphql-transport-ws", "graphql-ws"),
    # Seconds to wait for ``connection_init`` after accept; 0 closes at once (4408), None never.
    "CONNECTION_INIT_WAIT_TIMEOUT": 3.0,
    # Seconds between server pings (graphql-transport-ws) or ``ka`` frames (legacy); None: off.
    "KEEPALIVE_INTERVAL": 12.0,
    # Seconds a graphql-transport-ws peer has to answer a server ping before it is closed (3008).
    "PONG_TIMEOUT": 10.0,
    # graphql-transport-ws flow control: operation frames sent but not yet proven read (by a
    # pong to a later ping); at this many the connection's operations wait for the client.
    "SEND_WINDOW": 500,
    # Bytes the server may hold for one client that it has not read (Daphne buffers without
    # bound; uvicorn's transports say how much they hold); past this the client is taken for a
    # stalled reader and closed with 4413, whatever the protocol.
    "MAX_OUTBOUND_BUFFER_BYTES": 4 * 1024 * 1024,
    # Longest operation id accepted, in characters: ids are echoed in every frame of their
    # operation. Longer: close 4400 / legacy ``connection_error``.
    "MAX_OPERATION_ID_LENGTH": 128,
    # Operations running at once on one connection; one more gets an ``error`` message.
    "MAX_OPERATIONS_PER_CONNECTION": 100,
    # Largest frame accepted, in bytes (UTF-8); larger: close 4400 / legacy ``connection_error``.
    "MAX_MESSAGE_BYTES": 1024 * 1024,
    # Deepest nesting of objects and arrays a frame may have; deeper is treated as invalid
    # JSON (close 4400 / legacy ``connection_error``). Keep it well under 254, the depth
    # orjson can encode again (variables are encoded for cache keys and the registry).
    "MAX_FRAME_DEPTH": 32,
    # Largest document the parser reads, in lexical tokens, and at most as many comments
    # (bounds parse and validation cost).
    "MAX_DOCUMENT_TOKENS": 15_000,
    # Validation stops after this many errors, so a hostile document cannot flood the client.
    "MAX_VALIDATION_ERRORS": 50,
    # Limits every operation must pass at validation, fragments expanded (None: no limit).
    # Fields nested deeper than this; the standard introspection query is 15 deep.
    "MAX_QUERY_DEPTH": 20,
    # Aliased fields: aliases are how one document repeats a field's work.
    "MAX_ALIASES": 30,
    # Fields resolved per object, each fragment counted once per spread (lists are not
    # multiplied); the standard introspection query asks for about 230.
    "MAX_QUERY_COST": 2000,
    # Dotted paths of further graphql-core ValidationRule classes to run on every document.
    "VALIDATION_RULES": (),
    # Parsed and validated documents kept in the per-schema LRU cache.
    "DOCUMENT_CACHE_SIZE": 500,
    # Bytes the per-schema document cache may hold, as counted by gqlchannels.documents
    # (twice the text, plus 256 per AST node): clients choose the documents, so the cache is
    # bounded by memory as well as by count. A document larger than this is never cached.
    "DOCUMENT_CACHE_BYTES": 16 * 1024 * 1024,
    # Seconds a connection's teardown waits for cancelled operations to run their ``finally``.
    "DISCONNECT_TIMEOUT": 5.0,
    # Seconds over which a stopping server (SIGTERM/SIGINT) closes its connections with 1012,
    # evenly spread so that reconnecting clients do not return as one herd; 0 closes all at once.
    "DRAIN_WINDOW": 5.0,
    # "thread": plain sync resolvers run off the event loop (safe for the Django ORM);
    # "inline": they run on the loop (faster, for resolvers that never block).
    "SYNC_RESOLVERS": "thread",
    # Events buffered per subscription between the channel layer and the resolver; a
    # subscription that falls further behind ends with an ``error`` (SubscriptionOverflow).
    "SUBSCRIPTION_BUFFER_SIZE": 1000,
    # Seconds ``broadcast`` / ``broadcast_sync`` wait for the channel layer before raising
    # BroadcastError (Redis down or unreachable).
    "BROADCAST_TIMEOUT": 5.0,
    # Seconds between re-joins of every group this process listens to, so memberships
    # survive channels-redis' group_expiry and a Redis restart (also capped at a third of
    # the layer's group_expiry, and done at once when the layer recovers from a fault).
    "GROUP_REJOIN_INTERVAL": 30.0,
    # Channel layer alias used for broadcasting and per-connection messages.
    "CHANNEL_LAYER": "default",
    # Show exception messages of unexpected resolver errors to clients; None follows DEBUG.
    "DEBUG_ERRORS": None,
    # Keep a live registry of connections and operations in the database (the admin's
    # "GraphQL over WebSocket" pages, ``manage.py gqlchannels_audit``). It is written off the
    # hot path: consumers only queue changes, one task per process writes them in batches.
    "TRACKING": True,
    # Seconds between the registry's batched writes (new and ended connections and
    # operations); operations that start and end within one interval are never written.
    "TRACKING_FLUSH_INTERVAL": 1.0,
    # Bytes (UTF-8) of a document, and of the variables' JSON text, that the registry stores
    # per operation; longer ones are cut and end with "[truncated]" (the admin says so).
    "TRACKING_MAX_DOCUMENT_BYTES": 16 * 1024,
    "TRACKING_MAX_VARIABLES_BYTES": 16 * 1024,
    # Seconds between heartbeats: one UPDATE per process refreshing ``last_seen`` of every
    # connection it holds.
    "HEARTBEAT_INTERVAL": 15.0,
    # Seconds without a heartbeat after which a connection's row is stale (its process is
    # presumably gone); keep it several heartbeats long.
    "STALE_AFTER": 60.0,
}

#: Option names accepted by ``GraphQLWSConsumer.as_asgi(...)`` (lower case of the setting).
CONSUMER_OPTIONS = (
    "protocols",
    "connection_init_wait_timeout",
    "keepalive_interval",
    "pong_timeout",
    "max_operations_per_connection",
    "max_message_bytes",
    "max_frame_depth",
    "disconnect_timeout",
    "send_window",
    "max_outbound_buffer_bytes",
    "max_operation_id_length",
)


def user_settings() -> dict[str, Any]:
    """Return the project's ``GQLCHANNELS`` dict (empty when unset)."""
    return getattr(django_settings, SETTINGS_NAME, None) or {}


def get(name: str) -> Any:
    """Return one setting: the project's value when given, else the default."""
    if name not in DEFAULTS:
        raise KeyError(f"Unknown {SETTINGS_NAME} setting {name!r}")
    return user_settings().get(name, DEFAULTS[name])


def debug_errors() -> bool:
    """Whether unexpected exception messages may reach clients (DEBUG_ERRORS, else DEBUG)."""
    value = get("DEBUG_ERRORS")
    return bool(django_settings.DEBUG if value is None else value)
