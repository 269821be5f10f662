"""Settings every benchmark server shares: no database, no middleware, and the channel layer
named by the environment (``BENCH_LAYER=memory`` or ``redis``), configured the same way for
all three servers so that only the consumer differs.

``BENCH_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``) and ``BENCH_REDIS_PREFIX`` (a key
prefix of the run's own, so concurrent runs and test suites sharing one Redis never meet) pick
the Redis; ``BENCH_REDIS_MAX_CONNECTIONS`` sizes its connection pool (see below).
``BENCH_LAYER_CAPACITY`` is the per-channel capacity: high enough that a burst
never overflows a channel, since both layers drop what does not fit, silently, and that would
count as loss against whichever server has the fullest channel rather than the slowest one.
"""

from __future__ import annotations

import os

SECRET_KEY = "benchmark-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

LAYER = os.environ.get("BENCH_LAYER", "memory")
CAPACITY = int(os.environ.get("BENCH_LAYER_CAPACITY", "5000"))

if LAYER == "redis":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py 8 defaults socket_timeout to 5 s, the length of channels-redis'
                # blocking read: above it, an idle receive does not time out (gqlchannels.W002).
                "hosts": [
                    {
                        "address": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
                        "socket_timeout": 10,
                        # redis-py 8's asyncio pool holds at most 100 connections unless told
                        # otherwise and *raises* MaxConnectionsError beyond that instead of
                        # waiting. Strawberry and bare Channels run one group_add per
                        # subscriber, so 1,000 clients subscribing at once fail with "Too many
                        # connections" under the default: the pool is raised for every server
                        # so that the comparison measures fan-out, not the pool.
                        "max_connections": int(
                            os.environ.get("BENCH_REDIS_MAX_CONNECTIONS", "2000")
                        ),
                    }
                ],
                "capacity": CAPACITY,
                "prefix": os.environ.get("BENCH_REDIS_PREFIX", "gqlcbench"),
            },
        }
    }
elif LAYER == "memory":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": CAPACITY},
        }
    }
else:
    raise ValueError(f"BENCH_LAYER must be 'memory' or 'redis', not {LAYER!r}")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}
