"""ASGI entry point: HTTP to Django, WebSockets on /graphql/ to the chat's GraphQL consumer.

WebSockets pass gqlchannels' ``OriginValidator`` (browsers' cross-site sockets are refused,
clients that send no Origin, which are not browsers, are let in) and ``AuthMiddlewareStack``
(the session user is ``info.context.user``).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_project.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from demo_project.chat.consumers import ChatConsumer  # noqa: E402
from gqlchannels.security import OriginValidator  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": OriginValidator(
            AuthMiddlewareStack(URLRouter([path("graphql/", ChatConsumer.as_asgi())]))
        ),
    }
)
