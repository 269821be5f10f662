"""ASGI applications for the route checks: each routes ``GraphQLWSConsumer`` in one way
(validated or not, with or without a schema, nested), as a project's asgi.py would."""

from __future__ import annotations

from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator, OriginValidator
from django.core.asgi import get_asgi_application
from django.urls import path

from gqlchannels import GraphQLWSConsumer

http = get_asgi_application()


class BrokenSchemaConsumer(GraphQLWSConsumer):
    """A subclass whose class attribute names a schema that does not exist."""

    schema = "tests.schema.no_such_schema"


class CustomOriginValidator:
    """A project's own validator, recognised by its name."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Pass every connection on (the checks only read the wrapping)."""
        await self.inner(scope, receive, send)


class ChecksOrigin(CustomOriginValidator):
    """A validator by another name that says it validates origins."""

    validates_origin = True


def _websocket(*routes: Any) -> Any:
    return URLRouter(list(routes))


def _path(route: str, application: Any) -> Any:
    """``django.urls.path`` for an ASGI application (its stubs expect a view)."""
    return path(route, application)


validated = ProtocolTypeRouter(
    {
        "http": http,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(
                _websocket(
                    _path("graphql/", GraphQLWSConsumer.as_asgi(schema="tests.schema.schema"))
                )
            )
        ),
    }
)

unvalidated = ProtocolTypeRouter(
    {
        "http": http,
        "websocket": AuthMiddlewareStack(
            _websocket(_path("graphql/", GraphQLWSConsumer.as_asgi(schema="tests.schema.schema")))
        ),
    }
)

#: The route is validated by a nested router's wrapper, with explicit origins.
nested = ProtocolTypeRouter(
    {
        "websocket": _websocket(
            _path(
                "api/",
                OriginValidator(
                    _websocket(_path("graphql/", GraphQLWSConsumer.as_asgi())), ["127.0.0.1"]
                ),
            )
        ),
    }
)

custom_validators = ProtocolTypeRouter(
    {
        "websocket": _websocket(
            _path("a/", CustomOriginValidator(GraphQLWSConsumer.as_asgi())),
            _path("b/", ChecksOrigin(GraphQLWSConsumer.as_asgi())),
        ),
    }
)

broken_schema = ProtocolTypeRouter(
    {
        "websocket": AllowedHostsOriginValidator(
            _websocket(_path("x/", BrokenSchemaConsumer.as_asgi()))
        )
    }
)

#: Relies on GQLCHANNELS['SCHEMA'] for its schema.
settings_schema = ProtocolTypeRouter(
    {"websocket": AllowedHostsOriginValidator(_websocket(_path("y/", GraphQLWSConsumer.as_asgi())))}
)
