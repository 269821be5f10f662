"""System checks: a misconfigured ``GQLCHANNELS`` fails ``manage.py check``, not a live socket."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

from . import conf, ignored
from .limits import import_rule
from .protocols import PROTOCOLS

_POSITIVE_INTEGERS = (
    "MAX_OPERATIONS_PER_CONNECTION",
    "MAX_MESSAGE_BYTES",
    "MAX_FRAME_DEPTH",
    "MAX_VALIDATION_ERRORS",
    "DOCUMENT_CACHE_SIZE",
    "DOCUMENT_CACHE_BYTES",
    "SUBSCRIPTION_BUFFER_SIZE",
    "SEND_WINDOW",
    "MAX_OUTBOUND_BUFFER_BYTES",
    "MAX_OPERATION_ID_LENGTH",
    "TRACKING_MAX_DOCUMENT_BYTES",
    "TRACKING_MAX_VARIABLES_BYTES",
)
#: Limits that None switches off.
_OPTIONAL_POSITIVE_INTEGERS = ("MAX_QUERY_DEPTH", "MAX_ALIASES", "MAX_QUERY_COST")
_OPTIONAL_DURATIONS = (
    "CONNECTION_INIT_WAIT_TIMEOUT",
    "KEEPALIVE_INTERVAL",
    "PONG_TIMEOUT",
    "MAX_DOCUMENT_TOKENS",
)
_DURATIONS = ("DISCONNECT_TIMEOUT", "BROADCAST_TIMEOUT", "GROUP_REJOIN_INTERVAL", "DRAIN_WINDOW")
#: Intervals of a loop: 0 would make it spin.
_POSITIVE_DURATIONS = ("TRACKING_FLUSH_INTERVAL", "HEARTBEAT_INTERVAL", "STALE_AFTER")


def register() -> None:
    """Register every check of this module with Django."""
    checks.register(check_settings, checks.Tags.compatibility)
    checks.register(check_schema, checks.Tags.compatibility)
    checks.register(check_channel_layer, checks.Tags.compatibility)
    checks.register(check_redis_socket_timeout, checks.Tags.compatibility)
    checks.register(check_tracking, checks.Tags.compatibility)
    checks.register(check_validation_rules, checks.Tags.compatibility)
    checks.register(check_ignored_protections, checks.Tags.security)


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E001-E005: the shape and values of the ``GQLCHANNELS`` dict."""
    user = getattr(settings, conf.SETTINGS_NAME, None)
    if user is None:
        return []
    if not isinstance(user, dict):
        return [checks.Error("GQLCHANNELS must be a dict.", id="gqlchannels.E001")]
    errors: list[checks.CheckMessage] = [
        checks.Error(
            f"Unknown GQLCHANNELS setting {name!r}.",
            hint=f"Known settings: {', '.join(conf.DEFAULTS)}.",
            id="gqlchannels.E002",
        )
        for name in user
        if name not in conf.DEFAULTS
    ]
    protocols = conf.get("PROTOCOLS")
    if not protocols or isinstance(protocols, str) or any(p not in PROTOCOLS for p in protocols):
        errors.append(
            checks.Error(
                f"GQLCHANNELS['PROTOCOLS'] must list some of {list(PROTOCOLS)}.",
                id="gqlchannels.E003",
            )
        )
    for name in (*_POSITIVE_INTEGERS, *_OPTIONAL_POSITIVE_INTEGERS):
        value = conf.get(name)
        if value is None and name in _OPTIONAL_POSITIVE_INTEGERS:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            errors.append(
                checks.Error(
                    f"GQLCHANNELS[{name!r}] must be a positive integer"
                    + (" or None." if name in _OPTIONAL_POSITIVE_INTEGERS else "."),
                    id="gqlchannels.E004",
                )
            )
    for name in (*_OPTIONAL_DURATIONS, *_DURATIONS):
        value = conf.get(name)
        if value is None and name in _OPTIONAL_DURATIONS:
            continue
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            errors.append(
                checks.Error(
                    f"GQLCHANNELS[{name!r}] must be a number >= 0"
                    + (" or None." if name in _OPTIONAL_DURATIONS else "."),
                    id="gqlchannels.E004",
                )
            )
    for name in _POSITIVE_DURATIONS:
        value = conf.get(name)
        if not _is_number(value) or value <= 0:
            errors.append(
                checks.Error(f"GQLCHANNELS[{name!r}] must be a number > 0.", id="gqlchannels.E004")
            )
    if conf.get("SYNC_RESOLVERS") not in ("thread", "inline"):
        errors.append(
            checks.Error(
                "GQLCHANNELS['SYNC_RESOLVERS'] must be 'thread' or 'inline'.", id="gqlchannels.E005"
            )
        )
    return errors


def check_schema(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E006: ``GQLCHANNELS['SCHEMA']``, when set, names a GraphQL schema that imports."""
    from .execution import resolve_schema

    path = conf.get("SCHEMA") if isinstance(conf.user_settings(), dict) else None
    if path is None:
        return []
    try:
        resolve_schema(path)
    except Exception as exc:
        return [
            checks.Error(
                f"GQLCHANNELS['SCHEMA'] ({path!r}) is not a usable GraphQL schema: {exc}",
                id="gqlchannels.E006",
            )
        ]
    return []


def check_validation_rules(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E008: each of ``GQLCHANNELS['VALIDATION_RULES']`` imports as a ValidationRule class."""
    if not isinstance(conf.user_settings(), dict):
        return []
    paths = conf.get("VALIDATION_RULES")
    if isinstance(paths, str) or not isinstance(paths, list | tuple):
        return [
            checks.Error(
                "GQLCHANNELS['VALIDATION_RULES'] must be a list of dotted paths.",
                id="gqlchannels.E008",
            )
        ]
    errors: list[checks.CheckMessage] = []
    for path in paths:
        try:
            import_rule(path)
        except Exception as exc:
            errors.append(
                checks.Error(
                    f"GQLCHANNELS['VALIDATION_RULES'] entry {path!r} is not usable: {exc}",
                    hint="Give the dotted path of a graphql-core ValidationRule subclass.",
                    id="gqlchannels.E008",
                )
            )
    return errors


_INSTEAD_OF_IGNORED = (
    "What runs instead: GQLCHANNELS['MAX_QUERY_DEPTH'], ['MAX_ALIASES'], ['MAX_QUERY_COST'] "
    "and ['VALIDATION_RULES'] (graphql-core ValidationRule classes)."
)


def check_ignored_protections(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W005 and W006: a Strawberry schema's extensions (for ``GQLCHANNELS['SCHEMA']``) and
    graphene-django's middleware, which do not run over gqlchannels' WebSocket."""
    if not isinstance(conf.user_settings(), dict):
        return []
    warnings: list[checks.CheckMessage] = []
    path = conf.get("SCHEMA")
    try:
        schema = import_string(path) if isinstance(path, str) else path
    except Exception:
        schema = None  # E006 says so
    warnings.extend(
        checks.Warning(
            f"Strawberry extension {name} of GQLCHANNELS['SCHEMA'] does not run over "
            "gqlchannels' WebSocket.",
            hint=_INSTEAD_OF_IGNORED,
            id="gqlchannels.W005",
        )
        for name in ignored.strawberry_extensions(schema)
    )
    warnings.extend(
        checks.Warning(
            f"graphene-django middleware {name} (GRAPHENE['MIDDLEWARE']) does not run over "
            "gqlchannels' WebSocket.",
            hint=_INSTEAD_OF_IGNORED,
            id="gqlchannels.W006",
        )
        for name in ignored.graphene_middleware()
    )
    return warnings


def check_channel_layer(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W001: broadcasting needs the channel layer named by ``GQLCHANNELS['CHANNEL_LAYER']``."""
    if not isinstance(conf.user_settings(), dict):
        return []
    alias = conf.get("CHANNEL_LAYER")
    if alias not in getattr(settings, "CHANNEL_LAYERS", {}):
        return [
            checks.Warning(
                f"No channel layer {alias!r} in CHANNEL_LAYERS: broadcast() and listen() "
                "will fail.",
                hint="Add channels.layers.InMemoryChannelLayer for one process, or "
                "channels_redis.core.RedisChannelLayer across processes.",
                id="gqlchannels.W001",
            )
        ]
    return []


#: channels-redis blocks on BZPOPMIN for this many seconds; a socket timeout at or under it
#: makes every idle receive fail (redis-py 8 made 5 s its default).
_REDIS_BLOCKING_READ_SECONDS = 5


def check_redis_socket_timeout(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W002: a channels-redis host whose socket timeout would cut its own blocking reads."""
    if not isinstance(conf.user_settings(), dict):
        return []
    config = getattr(settings, "CHANNEL_LAYERS", {}).get(conf.get("CHANNEL_LAYER"), {})
    if "channels_redis" not in str(config.get("BACKEND", "")):
        return []
    warnings = []
    for host in config.get("CONFIG", {}).get("hosts", ["redis://127.0.0.1:6379"]):
        timeout = host.get("socket_timeout") if isinstance(host, dict) else None
        if timeout is None or timeout <= _REDIS_BLOCKING_READ_SECONDS:
            warnings.append(
                checks.Warning(
                    f"channels-redis host {host!r} has no socket_timeout above "
                    f"{_REDIS_BLOCKING_READ_SECONDS}s: with redis-py 8 every idle receive times "
                    "out and is retried.",
                    hint='Give each host as a dict: {"address": "redis://...", '
                    '"socket_timeout": 10}.',
                    id="gqlchannels.W002",
                )
            )
    return warnings


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_tracking(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E007, W003 and W004: the live registry's switch, a staleness that outlasts
    heartbeats, and a database to write the registry to.

    A row is stale after ``STALE_AFTER`` seconds without a heartbeat; at or under
    ``HEARTBEAT_INTERVAL`` (plus one flush) every live connection would look stale between
    two heartbeats, and ``gqlchannels_audit --prune`` would delete rows of live connections.
    Without a database every write fails, retried every flush for nothing.
    """
    if not isinstance(conf.user_settings(), dict):
        return []
    if not isinstance(conf.get("TRACKING"), bool):
        return [
            checks.Error("GQLCHANNELS['TRACKING'] must be True or False.", id="gqlchannels.E007")
        ]
    engine = (getattr(settings, "DATABASES", {}) or {}).get("default", {}).get("ENGINE", "")
    if conf.get("TRACKING") and (not engine or engine.endswith(".dummy")):
        return [
            checks.Warning(
                "GQLCHANNELS['TRACKING'] is on but there is no default database: the live "
                "registry cannot be written.",
                hint="Set GQLCHANNELS['TRACKING'] = False, or configure DATABASES and run migrate.",
                id="gqlchannels.W004",
            )
        ]
    heartbeat, stale, flush = (
        conf.get(name) for name in ("HEARTBEAT_INTERVAL", "STALE_AFTER", "TRACKING_FLUSH_INTERVAL")
    )
    if not all(_is_number(value) and value > 0 for value in (heartbeat, stale, flush)):
        return []  # E004 already says so
    if conf.get("TRACKING") and stale <= heartbeat + flush:
        return [
            checks.Warning(
                f"GQLCHANNELS['STALE_AFTER'] ({stale}s) is not longer than HEARTBEAT_INTERVAL "
                f"plus TRACKING_FLUSH_INTERVAL ({heartbeat + flush}s): live connections will "
                "look stale between heartbeats.",
                hint="Make STALE_AFTER several heartbeats long (the defaults: 15s and 60s).",
                id="gqlchannels.W003",
            )
        ]
    return []
