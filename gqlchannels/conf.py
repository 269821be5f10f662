"""The ``GQLCHANNELS`` settings: one table declares each setting once, and everything else
(defaults, ``as_asgi(...)`` options, the protocols' options, the checks) is derived from it.

Settings are read when they are used, never once at import, so ``override_settings`` in tests
and settings changed by the project after import keep working. *When* a setting is used is
its ``read``:

- ``Read.CONNECTION``: by each connection. The per-route options (``route``) among them come
  from ``as_asgi(...)`` when given there; the protocol's timings and limits and the outbound
  budget are read as the connection opens, the frame limits on every frame.
- ``Read.SCHEMA``: once per schema, when its shared ``Executor`` is built (the first connection
  to that schema), because they decide what its document cache holds: a document validated
  under one set of limits must not be served from the cache under another. Changing them takes
  a restart (tests build an ``Executor`` of their own).
- ``Read.USE``: each time the code that needs it runs (a broadcast, a flush, a heartbeat, a
  drain, an admin page).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings as django_settings

SETTINGS_NAME = "GQLCHANNELS"


class Kind(enum.Enum):
    """What values a setting takes; ``gqlchannels.checks`` validates each kind."""

    POSITIVE_INTEGER = "a positive integer"
    NON_NEGATIVE_NUMBER = "a number >= 0"
    POSITIVE_NUMBER = "a number > 0"
    SCHEMA = "a GraphQL schema or its dotted path"
    PROTOCOLS = "a list of supported subprotocols"
    RESOLVER_POLICY = "'thread' or 'inline'"
    BOOLEAN = "True or False"
    RULE_PATHS = "a list of dotted paths of ValidationRule classes"
    LAYER_ALIAS = "an alias of CHANNEL_LAYERS"
    TOKEN = "a non-empty string"


class Read(enum.Enum):
    """When a setting is read (see the module docstring)."""

    CONNECTION = "connection"
    SCHEMA = "schema"
    USE = "use"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _are_protocols(value: Any) -> bool:
    """A non-empty list or tuple of subprotocols gqlchannels speaks."""
    from .protocols import PROTOCOLS  # the protocols import this module: not at import

    return (
        isinstance(value, list | tuple)
        and bool(value)
        and all(isinstance(name, str) and name in PROTOCOLS for name in value)
    )


#: The test of each kind whose values a type test decides (the schema and the rule paths
#: must be imported, which their own checks do).
_KIND_TESTS: dict[Kind, Callable[[Any], bool]] = {
    Kind.POSITIVE_INTEGER: lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
    Kind.NON_NEGATIVE_NUMBER: lambda v: _is_number(v) and v >= 0,
    Kind.POSITIVE_NUMBER: lambda v: _is_number(v) and v > 0,
    Kind.PROTOCOLS: _are_protocols,
    Kind.BOOLEAN: lambda v: isinstance(v, bool),
    Kind.LAYER_ALIAS: lambda v: isinstance(v, str),
    Kind.RESOLVER_POLICY: lambda v: v in ("thread", "inline"),
}


@dataclass(frozen=True)
class Setting:
    """One row of the table: a setting's name, default, kind, when it is read, whether
    ``as_asgi(...)`` takes it per route (as its lower-case name), whether None is allowed
    (it switches the setting off), and what it means."""

    name: str
    default: Any
    kind: Kind
    read: Read
    meaning: str
    route: bool = False
    optional: bool = False

    @property
    def option(self) -> str:
        """The name ``as_asgi(...)`` and the protocol options know it by."""
        return self.name.lower()

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` is of this setting's kind (the schema and the rule paths pass
        here: their checks import them)."""
        if value is None and self.optional:
            return True
        test = _KIND_TESTS.get(self.kind)
        return test is None or test(value)


_C, _S, _U = Read.CONNECTION, Read.SCHEMA, Read.USE

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "SCHEMA",
        None,
        Kind.SCHEMA,
        _C,
        optional=True,
        meaning="Schema (or its dotted path) used when the consumer is routed without schema=.",
    ),
    Setting(
        "PROTOCOLS",
        ("graphql-transport-ws", "graphql-ws"),
        Kind.PROTOCOLS,
        _C,
        route=True,
        meaning="Subprotocols spoken; negotiation follows the client's order among these.",
    ),
    Setting(
        "CONNECTION_INIT_WAIT_TIMEOUT",
        3.0,
        Kind.NON_NEGATIVE_NUMBER,
        _C,
        route=True,
        optional=True,
        meaning="Seconds to wait for connection_init after accept; 0 closes at once (4408).",
    ),
    Setting(
        "KEEPALIVE_INTERVAL",
        12.0,
        Kind.NON_NEGATIVE_NUMBER,
        _C,
        route=True,
        optional=True,
        meaning="Seconds between server pings (graphql-transport-ws) or ka frames (legacy).",
    ),
    Setting(
        "PONG_TIMEOUT",
        10.0,
        Kind.NON_NEGATIVE_NUMBER,
        _C,
        route=True,
        optional=True,
        meaning="Seconds a graphql-transport-ws peer has to answer a ping before 3008.",
    ),
    Setting(
        "SEND_WINDOW",
        500,
        Kind.POSITIVE_INTEGER,
        _C,
        route=True,
        meaning="graphql-transport-ws operation frames sent but not proven read by a pong; "
        "at this many the connection's operations wait for the client.",
    ),
    Setting(
        "MAX_OUTBOUND_BUFFER_BYTES",
        4 * 1024 * 1024,
        Kind.POSITIVE_INTEGER,
        _C,
        route=True,
        meaning="Bytes the server may hold unread for one client (Daphne buffers without "
        "bound); past this the client is a stalled reader, closed with 4413.",
    ),
    Setting(
        "MAX_OPERATION_ID_LENGTH",
        128,
        Kind.POSITIVE_INTEGER,
        _C,
        route=True,
        meaning="Longest operation id in characters (ids are echoed in every frame); longer: "
        "close 4400 / legacy connection_error.",
    ),
    Setting(
        "MAX_OPERATIONS_PER_CONNECTION",
        100,
        Kind.POSITIVE_INTEGER,
        _C,
        route=True,
        meaning="Operations running at once on one connection; one more gets an error.",
    ),
    Setting(
        "MAX_DOCUMENT_CHARS_PER_CONNECTION",
        4 * 1024 * 1024,
        Kind.POSITIVE_INTEGER,
        _C,
        route=True,
        meaning="Characters of the documents of the operations running at once on one "
        "connection (each is kept parsed while it runs); one that would pass it gets an error.",
    ),
    Setting(
        "MAX_MESSAGE_BYTES",
        1024 * 1024,
        Kind.POSITIVE_INTEGER,
        _C,
        route=True,
        meaning="Largest frame in UTF-8 bytes; larger: close 4400 / legacy connection_error.",
    ),
    Setting(
        "MAX_FRAME_DEPTH",
        32,
        Kind.POSITIVE_INTEGER,
        _C,
        route=True,
        meaning="Deepest nesting in a frame, deeper is invalid JSON; keep it well under 254, "
        "the depth orjson encodes again (variables feed cache keys and the registry).",
    ),
    Setting(
        "MAX_DOCUMENT_TOKENS",
        15_000,
        Kind.POSITIVE_INTEGER,
        _S,
        optional=True,
        meaning="Lexical tokens the parser reads, and as many comments (bounds parse and "
        "validation cost).",
    ),
    Setting(
        "MAX_VALIDATION_ERRORS",
        50,
        Kind.POSITIVE_INTEGER,
        _S,
        meaning="Validation stops after this many errors, so a document cannot flood the client.",
    ),
    Setting(
        "MAX_QUERY_DEPTH",
        20,
        Kind.POSITIVE_INTEGER,
        _S,
        optional=True,
        meaning="Fields nested deeper are refused at validation (introspection is 15 deep).",
    ),
    Setting(
        "MAX_ALIASES",
        30,
        Kind.POSITIVE_INTEGER,
        _S,
        optional=True,
        meaning="Aliased fields per operation, fragments expanded (aliases repeat work).",
    ),
    Setting(
        "MAX_QUERY_COST",
        2000,
        Kind.POSITIVE_INTEGER,
        _S,
        optional=True,
        meaning="Fields resolved per operation, each fragment once per spread, lists not "
        "multiplied (the introspection query asks for about 230).",
    ),
    Setting(
        "VALIDATION_RULES",
        (),
        Kind.RULE_PATHS,
        _S,
        meaning="Dotted paths of further graphql-core ValidationRule classes for every document.",
    ),
    Setting(
        "DOCUMENT_CACHE_SIZE",
        500,
        Kind.POSITIVE_INTEGER,
        _S,
        meaning="Parsed and validated documents kept in the per-schema LRU cache.",
    ),
    Setting(
        "DOCUMENT_CACHE_BYTES",
        16 * 1024 * 1024,
        Kind.POSITIVE_INTEGER,
        _S,
        meaning="Bytes that cache may hold, as gqlchannels.documents counts them (clients choose "
        "the documents); a larger document is never cached.",
    ),
    Setting(
        "DISCONNECT_TIMEOUT",
        5.0,
        Kind.NON_NEGATIVE_NUMBER,
        _C,
        route=True,
        meaning="Seconds a connection's teardown waits for cancelled operations' finally.",
    ),
    Setting(
        "DRAIN_WINDOW",
        5.0,
        Kind.NON_NEGATIVE_NUMBER,
        _U,
        meaning="Seconds over which a stopping server closes its connections with 1012, spread "
        "evenly so clients do not return as one herd; 0 closes all at once.",
    ),
    Setting(
        "SYNC_RESOLVERS",
        "thread",
        Kind.RESOLVER_POLICY,
        _S,
        meaning="'thread': plain sync resolvers run off the event loop (ORM-safe); 'inline': "
        "on the loop (for resolvers that never block).",
    ),
    Setting(
        "COMPILED_EXECUTION",
        True,
        Kind.BOOLEAN,
        _S,
        meaning="Execute subscription events on closures compiled once per document and "
        "variables instead of graphql-core's interpreter, where they give the same result "
        "(gqlchannels.compiled); False: always graphql-core.",
    ),
    Setting(
        "SUBSCRIPTION_BUFFER_SIZE",
        1000,
        Kind.POSITIVE_INTEGER,
        _U,
        meaning="Events buffered per subscription; one further behind ends with an error.",
    ),
    Setting(
        "BROADCAST_TIMEOUT",
        5.0,
        Kind.NON_NEGATIVE_NUMBER,
        _U,
        meaning="Seconds broadcast() waits for the channel layer before BroadcastError.",
    ),
    Setting(
        "GROUP_REJOIN_INTERVAL",
        30.0,
        Kind.NON_NEGATIVE_NUMBER,
        _U,
        meaning="Seconds between re-joins of every group this process listens to (at most a "
        "third of group_expiry, and at once after a layer fault).",
    ),
    Setting(
        "CHANNEL_LAYER",
        "default",
        Kind.LAYER_ALIAS,
        _U,
        meaning="Channel layer alias used for broadcasting and per-connection messages.",
    ),
    Setting(
        "DEBUG_ERRORS",
        None,
        Kind.BOOLEAN,
        _U,
        optional=True,
        meaning="Show unexpected resolver errors' messages to clients; None follows DEBUG.",
    ),
    Setting(
        "PLAYGROUND",
        None,
        Kind.BOOLEAN,
        _U,
        optional=True,
        meaning="Who gets the playground page on GET of the GraphQL route: None, everyone "
        "with DEBUG on, else active staff only; True everyone; False nobody (404).",
    ),
    Setting(
        "END_SESSIONS",
        True,
        Kind.BOOLEAN,
        _U,
        meaning="Close a user's connections in every process when they log out, are "
        "deactivated or deleted, or their Django session is deleted (read at start-up).",
    ),
    Setting(
        "METRICS",
        True,
        Kind.BOOLEAN,
        _U,
        meaning="Count Prometheus metrics (when prometheus-client is installed); False counts "
        "nothing and the metrics view answers 404 (read at start-up).",
    ),
    Setting(
        "METRICS_TOKEN",
        None,
        Kind.TOKEN,
        _U,
        optional=True,
        meaning="A bearer token that lets a scraper without a session read the metrics view "
        "(Authorization: Bearer <token>); None: staff only.",
    ),
    Setting(
        "METRICS_PUBLIC",
        False,
        Kind.BOOLEAN,
        _U,
        meaning="Let everyone read the metrics view (behind a network only monitoring "
        "reaches); False: staff, or the METRICS_TOKEN.",
    ),
    Setting(
        "TRACKING",
        True,
        Kind.BOOLEAN,
        _U,
        meaning="Keep the live registry of connections and operations in the database "
        "(queued by consumers, written in batches off the hot path).",
    ),
    Setting(
        "TRACKING_FLUSH_INTERVAL",
        1.0,
        Kind.POSITIVE_NUMBER,
        _U,
        meaning="Seconds between the registry's batched writes; shorter operations are never "
        "written.",
    ),
    Setting(
        "TRACKING_MAX_DOCUMENT_BYTES",
        16 * 1024,
        Kind.POSITIVE_INTEGER,
        _U,
        meaning="UTF-8 bytes of a document the registry stores; longer is cut, '[truncated]'.",
    ),
    Setting(
        "TRACKING_MAX_VARIABLES_BYTES",
        16 * 1024,
        Kind.POSITIVE_INTEGER,
        _U,
        meaning="UTF-8 bytes of the variables' JSON the registry stores; longer is cut.",
    ),
    Setting(
        "HEARTBEAT_INTERVAL",
        15.0,
        Kind.POSITIVE_NUMBER,
        _U,
        meaning="Seconds between heartbeats: one UPDATE per process refreshing last_seen.",
    ),
    Setting(
        "STALE_AFTER",
        60.0,
        Kind.POSITIVE_NUMBER,
        _U,
        meaning="Seconds without a heartbeat after which a row is stale (its process presumably "
        "gone); keep it several heartbeats long.",
    ),
)

#: Every setting by name.
TABLE: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}

DEFAULTS: dict[str, Any] = {setting.name: setting.default for setting in SETTINGS}

#: Option names accepted by ``GraphQLWSConsumer.as_asgi(...)`` (lower case of the setting).
CONSUMER_OPTIONS = tuple(setting.option for setting in SETTINGS if setting.route)


class _FromSettings:
    """The type of ``FROM_SETTINGS``: a default that None (which switches limits off)
    cannot stand for."""

    def __repr__(self) -> str:
        return "FROM_SETTINGS"


#: A keyword argument's default meaning "the setting's value when the object is built".
FROM_SETTINGS: Any = _FromSettings()


def user_settings() -> dict[str, Any]:
    """Return the project's ``GQLCHANNELS`` dict (empty when unset, or when it is not a dict:
    check E001 reports that, and start-up must get as far as running the checks)."""
    value = getattr(django_settings, SETTINGS_NAME, None)
    return value if isinstance(value, dict) else {}


def get(name: str) -> Any:
    """Return one setting: the project's value when given, else the default."""
    if name not in DEFAULTS:
        raise KeyError(f"Unknown {SETTINGS_NAME} setting {name!r}")
    return user_settings().get(name, DEFAULTS[name])


def given_or_setting(value: Any, name: str) -> Any:
    """``value``, unless it was left at ``FROM_SETTINGS``: then the setting ``name``."""
    return get(name) if value is FROM_SETTINGS else value


def debug_errors() -> bool:
    """Whether unexpected exception messages may reach clients (DEBUG_ERRORS, else DEBUG)."""
    value = get("DEBUG_ERRORS")
    return bool(django_settings.DEBUG if value is None else value)


def check_options(options: dict[str, Any]) -> None:
    """Refuse, when the route is built, ``as_asgi(...)`` options that are not per-route
    settings or whose value is not of the setting's kind (TypeError), instead of failing
    later in a connection's task."""
    unknown = set(options) - set(CONSUMER_OPTIONS)
    if unknown:
        raise TypeError(
            f"Unknown GraphQLWSConsumer option(s) {sorted(unknown)}; "
            f"expected some of {list(CONSUMER_OPTIONS)}"
        )
    for setting in SETTINGS:
        if setting.option in options and not setting.accepts(options[setting.option]):
            allowed = setting.kind.value + (" or None" if setting.optional else "")
            raise TypeError(
                f"GraphQLWSConsumer option {setting.option}={options[setting.option]!r} "
                f"must be {allowed}"
            )
