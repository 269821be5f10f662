"""Settings of the demo project: a small chat served over GraphQL WebSockets.

Embedded defaults (SQLite, in-memory channel layer) need no services. ``REDIS_URL`` switches
the channel layer to channels-redis (``REDIS_URLS``, comma-separated, to several Redis servers;
``GQLCHANNELS_REDIS_LAYER=pubsub`` to its pub/sub layer). Safe on a network by default: the
secret key comes from ``DJANGO_SECRET_KEY`` or is generated on first run into an ignored file
(``DJANGO_SECRET_KEY_FILE``, by default ``.demo-secret-key`` in the checkout), and debugging
is on only with ``DJANGO_DEBUG=1``.
"""

import os
from pathlib import Path
from typing import Any

from demo_project.secret_key import load_or_create

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or load_or_create(
    Path(os.environ.get("DJANGO_SECRET_KEY_FILE") or BASE_DIR / ".demo-secret-key")
)
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "gqlchannels",
    "demo_project.chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo_project.urls"
ASGI_APPLICATION = "demo_project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES: dict[str, dict[str, Any]] = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
    }
}

# The test suite's switch: GQLCHANNELS_TEST_DATABASE=postgres runs it (and the servers it
# starts) on PostgreSQL instead, at GQLCHANNELS_POSTGRES_HOST (127.0.0.1), _PORT (5432) as
# _USER (postgres), on the database _NAME (gqlchannels; pytest-django tests on test_<NAME>).
_TEST_DATABASE = os.environ.get("GQLCHANNELS_TEST_DATABASE", "sqlite")
if _TEST_DATABASE == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("GQLCHANNELS_POSTGRES_NAME", "gqlchannels"),
            "HOST": os.environ.get("GQLCHANNELS_POSTGRES_HOST", "127.0.0.1"),
            "PORT": os.environ.get("GQLCHANNELS_POSTGRES_PORT", "5432"),
            "USER": os.environ.get("GQLCHANNELS_POSTGRES_USER", "postgres"),
            "PASSWORD": os.environ.get("GQLCHANNELS_POSTGRES_PASSWORD", ""),
        }
    }
elif _TEST_DATABASE != "sqlite":
    raise ValueError(
        f"GQLCHANNELS_TEST_DATABASE must be sqlite or postgres, not {_TEST_DATABASE!r}"
    )

#: Redis servers of the channel layer: ``REDIS_URLS`` (comma-separated: channels-redis shards
#: over them) or ``REDIS_URL``; none, the in-memory layer.
REDIS_URLS = [
    url.strip()
    for url in (os.environ.get("REDIS_URLS") or os.environ.get("REDIS_URL") or "").split(",")
    if url.strip()
]
# A socket timeout above channels-redis' 5 s blocking read (gqlchannels.W002).
_hosts = [{"address": url, "socket_timeout": 10} for url in REDIS_URLS]
# Keys (and pub/sub channels) are named "<prefix>..."; a prefix of their own keeps projects
# (and test runs) sharing one Redis apart.
_prefix = os.environ.get("GQLCHANNELS_REDIS_PREFIX", "asgi")

if REDIS_URLS and os.environ.get("GQLCHANNELS_REDIS_LAYER") == "pubsub":
    # Redis pub/sub: no capacity, expiry or group_expiry to set (it keeps nothing in Redis).
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": _hosts, "prefix": _prefix},
        }
    }
elif REDIS_URLS:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": _hosts,
                "capacity": 1000,
                "group_expiry": int(os.environ.get("GQLCHANNELS_GROUP_EXPIRY", "86400")),
                "prefix": _prefix,
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 1000}}
    }
del _hosts, _prefix

GQLCHANNELS: dict[str, Any] = {
    "SCHEMA": "demo_project.chat.schema.schema",
}


def _flag(text: str) -> bool:
    """An on/off environment value: 1, true, yes or on (any case) mean on."""
    return text.strip().lower() in ("1", "true", "yes", "on")


# GQLCHANNELS_<NAME> in the environment sets these timing, flow-control, tracking and metrics
# settings (for operations, and for the tests and benchmarks that run the demo in real daphne
# processes).
for _name, _type in (
    ("BROADCAST_TIMEOUT", float),
    ("DRAIN_WINDOW", float),
    ("GROUP_REJOIN_INTERVAL", float),
    ("KEEPALIVE_INTERVAL", float),
    ("PONG_TIMEOUT", float),
    ("SEND_WINDOW", int),
    ("MAX_OUTBOUND_BUFFER_BYTES", int),
    ("SUBSCRIPTION_BUFFER_SIZE", int),
    ("TRACKING", _flag),
    ("TRACKING_FLUSH_INTERVAL", float),
    ("HEARTBEAT_INTERVAL", float),
    ("STALE_AFTER", float),
    ("METRICS_TOKEN", str),
):
    if os.environ.get(f"GQLCHANNELS_{_name}"):
        GQLCHANNELS[_name] = _type(os.environ[f"GQLCHANNELS_{_name}"])
del _name, _type

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    # The demo's own lines too, whichever server runs it (uvicorn leaves the root logger at
    # WARNING; daphne sets it to INFO).
    "loggers": {
        name: {"handlers": ["console"], "level": "INFO", "propagate": False}
        for name in ("gqlchannels", "demo_project")
    },
}
