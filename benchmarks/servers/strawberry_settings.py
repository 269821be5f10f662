"""The Strawberry server: the shared settings (Strawberry needs no Django app)."""

from benchmarks.servers.base_settings import *  # noqa: F403
