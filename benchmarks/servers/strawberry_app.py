"""ASGI application of the Strawberry server: ``strawberry.channels.GraphQLWSConsumer`` with
its defaults on every WebSocket path, the publish endpoint for HTTP."""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.servers.strawberry_settings")
django.setup()

from channels.routing import ProtocolTypeRouter  # noqa: E402
from strawberry.channels import GraphQLWSConsumer  # noqa: E402

from benchmarks.servers.common import apply_gc_policy, control_app  # noqa: E402
from benchmarks.servers.publish import publish_group  # noqa: E402
from benchmarks.servers.strawberry_schema import schema  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": control_app(publish_group),
        "websocket": GraphQLWSConsumer.as_asgi(schema=schema),
    }
)
apply_gc_policy()
