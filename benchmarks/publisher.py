"""A publisher in a process of its own, so that publishing costs nothing on the server's loop.

``python -m benchmarks.publisher SERVER`` (with the server's ``DJANGO_SETTINGS_MODULE`` and
``BENCH_*`` environment) reads one JSON command per line on stdin, ``{"topic", "start",
"count", "rate", "pad_bytes"}``, publishes that batch through the channel layer exactly as
the server's own users would (``gqlchannels.broadcast``, or ``group_send`` for Strawberry and
the floor), and answers with one JSON line on stdout. Only a layer that crosses processes
(Redis) can be used this way; the in-memory layer is published to through the server's HTTP
endpoint instead.
"""

from __future__ import annotations

import asyncio
import json
import sys


async def serve(server: str) -> None:
    """Answer commands until stdin closes."""
    from benchmarks.servers.common import publish_request
    from benchmarks.servers.publish import PUBLISHERS

    publish = PUBLISHERS[server]
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"ready": True}), flush=True)
    while line := await reader.readline():
        request = json.loads(line)
        try:
            answer = await publish_request(publish, request)
        except Exception as exc:  # reported to the driver, which fails the scenario
            answer = {"error": repr(exc)}
        print(json.dumps(answer), flush=True)


def main() -> None:
    """Set Django up with the server's settings, then serve commands."""
    import django

    django.setup()
    asyncio.run(serve(sys.argv[1]))


if __name__ == "__main__":
    main()
