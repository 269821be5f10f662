"""The gqlchannels server: the shared settings plus the app, with gqlchannels' defaults.

gqlchannels keeps a live registry of connections in the database (``TRACKING``, on by
default), so this server has a SQLite database (``BENCH_SQLITE_PATH``), migrated by the
harness before daphne starts. ``BENCH_TRACKING=0`` turns the registry off to measure its cost.
"""

import os

from benchmarks.servers.base_settings import *  # noqa: F403

INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "gqlchannels"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("BENCH_SQLITE_PATH", "/tmp/gqlchannels-bench.sqlite3"),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
GQLCHANNELS = {"SCHEMA": "benchmarks.servers.gqlchannels_schema.schema"}
if os.environ.get("BENCH_TRACKING"):
    GQLCHANNELS["TRACKING"] = os.environ["BENCH_TRACKING"] == "1"
# The hostile scenario reads gqlchannels' INFO lines (which connections it closed, and why).
LOGGING["loggers"] = {  # noqa: F405
    "gqlchannels": {"level": os.environ.get("BENCH_GQLCHANNELS_LOG_LEVEL", "WARNING")}
}
