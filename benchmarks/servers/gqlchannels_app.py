"""ASGI application of the gqlchannels server: its consumer on every WebSocket path, the
publish endpoint for HTTP. No middleware, as for the other two servers."""

from __future__ import annotations

import os
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.servers.gqlchannels_settings")
django.setup()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from benchmarks.servers.common import apply_gc_policy, control_app  # noqa: E402
from benchmarks.servers.gqlchannels_schema import schema, unshared_schema  # noqa: E402
from benchmarks.servers.publish import publish_gqlchannels  # noqa: E402
from gqlchannels.consumers import GraphQLWSConsumer  # noqa: E402


def serving(schema: Any) -> ProtocolTypeRouter:
    """The consumer on ``schema`` for WebSockets, the publish endpoint for HTTP."""
    return ProtocolTypeRouter(
        {
            "http": control_app(publish_gqlchannels),
            "websocket": GraphQLWSConsumer.as_asgi(schema=schema),
        }
    )


application = serving(schema)
#: The same server with each event executed once per subscriber (no shared results).
unshared_application = serving(unshared_schema)
apply_gc_policy()
