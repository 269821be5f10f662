"""System checks: a misconfigured ``GQLCHANNELS`` fails ``manage.py check``, not a live socket."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

from . import conf, ignored
from .limits import import_rule
from .protocols import PROTOCOLS
from .routes import Route, consumer_routes

#: The check id of each numeric kind of setting (one id per condition) and its test.
_NUMBER_CHECKS: dict[conf.Kind, str] = {
    conf.Kind.POSITIVE_INTEGER: "gqlchannels.E004",
    conf.Kind.NON_NEGATIVE_NUMBER: "gqlchannels.E009",
    conf.Kind.POSITIVE_NUMBER: "gqlchannels.E010",
}


def register() -> None:
    """Register every check of this module with Django."""
    checks.register(check_settings, checks.Tags.compatibility)
    checks.register(check_schema, checks.Tags.compatibility)
    checks.register(check_channel_layer, checks.Tags.compatibility)
    checks.register(check_debug_errors_deployed, checks.Tags.security, deploy=True)
    checks.register(check_redis_socket_timeout, checks.Tags.compatibility)
    checks.register(check_tracking, checks.Tags.compatibility)
    checks.register(check_validation_rules, checks.Tags.compatibility)
    checks.register(check_ignored_protections, checks.Tags.security)
    checks.register(check_asgi_application, checks.Tags.compatibility)
    checks.register(check_daphne_order, checks.Tags.compatibility)
    checks.register(check_route_schemas, checks.Tags.compatibility)
    checks.register(check_in_memory_layer_deployed, checks.Tags.compatibility, deploy=True)
    checks.register(check_origin_validation_deployed, checks.Tags.security, deploy=True)
    checks.register(check_playground, checks.Tags.security)
    checks.register(check_end_sessions, checks.Tags.security)
    checks.register(check_compiled_execution, checks.Tags.compatibility)
    checks.register(check_metrics, checks.Tags.security)


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E001-E005, E009, E010, E014 and E015: the shape and values of the ``GQLCHANNELS``
    dict."""
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
    if not conf.TABLE["PROTOCOLS"].accepts(conf.get("PROTOCOLS")):
        errors.append(
            checks.Error(
                f"GQLCHANNELS['PROTOCOLS'] must list some of {list(PROTOCOLS)}.",
                id="gqlchannels.E003",
            )
        )
    errors.extend(_number_errors())
    if not conf.TABLE["SYNC_RESOLVERS"].accepts(conf.get("SYNC_RESOLVERS")):
        errors.append(
            checks.Error(
                "GQLCHANNELS['SYNC_RESOLVERS'] must be 'thread' or 'inline'.", id="gqlchannels.E005"
            )
        )
    if not conf.TABLE["DEBUG_ERRORS"].accepts(conf.get("DEBUG_ERRORS")):
        errors.append(
            checks.Error(
                "GQLCHANNELS['DEBUG_ERRORS'] must be True, False or None (None follows DEBUG).",
                id="gqlchannels.E014",
            )
        )
    if not conf.TABLE["CHANNEL_LAYER"].accepts(conf.get("CHANNEL_LAYER")):
        errors.append(
            checks.Error(
                "GQLCHANNELS['CHANNEL_LAYER'] must be a string: an alias of CHANNEL_LAYERS.",
                id="gqlchannels.E015",
            )
        )
    return errors


def _layer_config() -> dict[str, Any] | None:
    """The ``CHANNEL_LAYERS`` entry of ``GQLCHANNELS['CHANNEL_LAYER']`` (None when the alias
    is missing or not a string: W001 and E015 say so)."""
    alias = conf.get("CHANNEL_LAYER")
    layers = getattr(settings, "CHANNEL_LAYERS", {}) or {}
    if not isinstance(alias, str) or alias not in layers:
        return None
    config: dict[str, Any] = layers[alias]
    return config


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
    if isinstance(alias, str) and _layer_config() is None:
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
    """W002: a channels-redis host whose socket timeout would cut its own blocking reads.

    Only ``RedisChannelLayer`` (``channels_redis.core``) blocks on reads; the pub/sub layer
    polls its subscriptions every 0.1 s, so any socket timeout suits it.
    """
    if not isinstance(conf.user_settings(), dict):
        return []
    config = _layer_config() or {}
    if not str(config.get("BACKEND", "")).startswith("channels_redis.core."):
        return []
    warnings: list[checks.CheckMessage] = []
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


def _number_errors() -> list[checks.CheckMessage]:
    """E004, E009 and E010: each numeric setting holds a value of its kind (or None, where
    None switches it off)."""
    errors: list[checks.CheckMessage] = []
    for setting in conf.SETTINGS:
        if setting.kind not in _NUMBER_CHECKS:
            continue
        if setting.accepts(conf.get(setting.name)):
            continue
        check_id = _NUMBER_CHECKS[setting.kind]
        errors.append(
            checks.Error(
                f"GQLCHANNELS[{setting.name!r}] must be {setting.kind.value}"
                + (" or None." if setting.optional else "."),
                id=check_id,
            )
        )
    return errors


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
    if not conf.TABLE["TRACKING"].accepts(conf.get("TRACKING")):
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
    names = ("HEARTBEAT_INTERVAL", "STALE_AFTER", "TRACKING_FLUSH_INTERVAL")
    if not all(conf.TABLE[name].accepts(conf.get(name)) for name in names):
        return []  # E010 already says so
    heartbeat, stale, flush = (conf.get(name) for name in names)
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


def check_debug_errors_deployed(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """W007 (``check --deploy``): stack traces reach clients although DEBUG is off."""
    if conf.get("DEBUG_ERRORS") and not settings.DEBUG:
        return [
            checks.Warning(
                "GQLCHANNELS['DEBUG_ERRORS'] is on with DEBUG off: unexpected exceptions' "
                "messages and stack traces are sent to clients.",
                hint="Leave DEBUG_ERRORS unset (it follows DEBUG) in production.",
                id="gqlchannels.W007",
            )
        ]
    return []


_SERVE_OVER_ASGI = (
    "Put 'daphne' first in INSTALLED_APPS and set ASGI_APPLICATION = "
    "'yourproject.asgi.application' (runserver then serves ASGI), or serve with "
    "'daphne yourproject.asgi:application' / uvicorn."
)


def check_asgi_application(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W008 and E011: an ASGI application to serve the WebSocket routes from.

    Without ``ASGI_APPLICATION``, ``runserver`` serves WSGI and every WebSocket gets a 404
    (a server started with the application's path, ``daphne project.asgi:application``,
    does not need the setting: hence a warning). A path that does not import fails the
    server at start-up, and every other route check needs the application.
    """
    path = getattr(settings, "ASGI_APPLICATION", None)
    if not path:
        return [
            checks.Warning(
                "ASGI_APPLICATION is not set: runserver serves WSGI, and every WebSocket "
                "request to gqlchannels gets a 404.",
                hint=_SERVE_OVER_ASGI,
                id="gqlchannels.W008",
            )
        ]
    try:
        import_string(path)
    except Exception as exc:
        return [
            checks.Error(
                f"ASGI_APPLICATION ({path!r}) does not import: {exc!r}",
                hint="Give the dotted path of the application object in your asgi.py.",
                id="gqlchannels.E011",
            )
        ]
    return []


def check_daphne_order(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W009: ``daphne`` installed after ``django.contrib.staticfiles``, whose ``runserver``
    (WSGI: every WebSocket a 404) then replaces daphne's (the first app's command wins)."""
    from django.apps import apps

    names = [config.name for config in apps.get_app_configs()]
    staticfiles = "django.contrib.staticfiles"
    if (
        "daphne" in names
        and staticfiles in names
        and names.index("daphne") > names.index(staticfiles)
    ):
        return [
            checks.Warning(
                "'daphne' comes after 'django.contrib.staticfiles' in INSTALLED_APPS: "
                "runserver is staticfiles' WSGI server, and WebSockets get a 404.",
                hint="Put 'daphne' first in INSTALLED_APPS.",
                id="gqlchannels.W009",
            )
        ]
    return []


def _routes() -> list[Route]:
    """The ``GraphQLWSConsumer`` routes of ``ASGI_APPLICATION`` (none when it is unset or
    does not import: W008 and E011 say so)."""
    from .consumers import GraphQLWSConsumer

    try:
        application = import_string(settings.ASGI_APPLICATION)
    except Exception:
        return []
    return [
        route
        for route in consumer_routes(application)
        if issubclass(route.consumer_class, GraphQLWSConsumer)
    ]


def check_route_schemas(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E012 and E013: each ``GraphQLWSConsumer`` route has a schema that imports (its
    ``as_asgi(schema=...)``, else its class's ``schema``, else ``GQLCHANNELS['SCHEMA']``,
    which E006 checks), checked before the first client connects to it."""
    from .execution import resolve_schema

    if not getattr(settings, "ASGI_APPLICATION", None):
        return []
    errors: list[checks.CheckMessage] = []
    for route in _routes():
        name = f"{route.consumer_class.__qualname__} at {route.where!r}"
        source = route.initkwargs.get("schema")
        if source is None:
            source = getattr(route.consumer_class, "schema", None)
        if source is None:
            if conf.get("SCHEMA") is None:
                errors.append(
                    checks.Error(
                        f"{name} has no schema: no as_asgi(schema=...), no class attribute "
                        "schema, and no GQLCHANNELS['SCHEMA'].",
                        hint="Pass schema= to as_asgi(), or set GQLCHANNELS['SCHEMA'].",
                        id="gqlchannels.E013",
                    )
                )
            continue
        try:
            resolve_schema(source)
        except Exception as exc:
            errors.append(
                checks.Error(
                    f"{name}: its schema {source!r} is not a usable GraphQL schema: {exc!r}",
                    id="gqlchannels.E012",
                )
            )
    return errors


def check_in_memory_layer_deployed(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """W010 (``check --deploy``): the in-memory channel layer, whose broadcasts and admin
    disconnects never leave the process that sent them."""
    if not isinstance(conf.user_settings(), dict):
        return []
    config = _layer_config() or {}
    if "InMemoryChannelLayer" in str(config.get("BACKEND", "")):
        return [
            checks.Warning(
                f"Channel layer {conf.get('CHANNEL_LAYER')!r} is the in-memory layer: "
                "broadcasts, admin disconnects and audit probes do not cross processes.",
                hint="Use channels_redis.core.RedisChannelLayer when more than one process "
                "serves (see 'Running in production' in gqlchannels' README).",
                id="gqlchannels.W010",
            )
        ]
    return []


def check_origin_validation_deployed(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """W011 (``check --deploy``): a ``GraphQLWSConsumer`` route no origin validator guards,
    so any web page a user visits can open a socket with the user's cookies."""
    return [
        checks.Warning(
            f"{route.consumer_class.__qualname__} at {route.where!r} is not wrapped in an "
            "origin validator: other sites' pages can open WebSockets with your users' "
            "session cookies (cross-site WebSocket hijacking).",
            hint="Wrap the websocket application in channels.security.websocket."
            "AllowedHostsOriginValidator (or OriginValidator).",
            id="gqlchannels.W011",
        )
        for route in _routes()
        if not route.origin_validated
    ]


def check_playground(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E020: ``GQLCHANNELS['PLAYGROUND']`` is None, True or False.

    Any other value (``"false"``, ``0``) would leave it unclear who sees the page; the view
    shows it to nobody then, and this check says why.
    """
    if not isinstance(conf.user_settings(), dict):
        return []
    value = conf.get("PLAYGROUND")
    if value is not None and not isinstance(value, bool):
        return [
            checks.Error(
                "GQLCHANNELS['PLAYGROUND'] must be None, True or False.",
                hint="None: the page is shown with DEBUG on, else to active staff only; "
                "True: to everyone; False: to nobody.",
                id="gqlchannels.E020",
            )
        ]
    return []


def check_end_sessions(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E021: ``END_SESSIONS`` is a boolean (it decides at start-up whether logouts close
    connections, so a typo must not silently turn that off or on)."""
    if not isinstance(conf.user_settings(), dict) or isinstance(conf.get("END_SESSIONS"), bool):
        return []
    return [
        checks.Error("GQLCHANNELS['END_SESSIONS'] must be True or False.", id="gqlchannels.E021")
    ]


def check_metrics(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E022-E024: the metrics settings are of their kinds. A wrong ``METRICS`` would switch
    counting on or off by accident; a wrong ``METRICS_PUBLIC`` or ``METRICS_TOKEN`` is taken
    as closed (only staff get in), and these say why a scraper is refused."""
    if not isinstance(conf.user_settings(), dict):
        return []
    errors: list[checks.CheckMessage] = []
    if not isinstance(conf.get("METRICS"), bool):
        errors.append(
            checks.Error("GQLCHANNELS['METRICS'] must be True or False.", id="gqlchannels.E022")
        )
    if not isinstance(conf.get("METRICS_PUBLIC"), bool):
        errors.append(
            checks.Error(
                "GQLCHANNELS['METRICS_PUBLIC'] must be True or False.", id="gqlchannels.E023"
            )
        )
    token = conf.get("METRICS_TOKEN")
    if token is not None and (not isinstance(token, str) or not token):
        errors.append(
            checks.Error(
                "GQLCHANNELS['METRICS_TOKEN'] must be None or a non-empty string.",
                hint="Scrapers send it as 'Authorization: Bearer <token>'.",
                id="gqlchannels.E024",
            )
        )
    return errors


def check_compiled_execution(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E026: ``COMPILED_EXECUTION`` is a boolean (``"false"`` would silently mean on)."""
    if not isinstance(conf.user_settings(), dict):
        return []
    if isinstance(conf.get("COMPILED_EXECUTION"), bool):
        return []
    return [
        checks.Error(
            "GQLCHANNELS['COMPILED_EXECUTION'] must be True or False.", id="gqlchannels.E026"
        )
    ]
