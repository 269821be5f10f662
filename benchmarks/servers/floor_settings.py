"""The floor server: the shared settings (a bare Channels consumer needs no Django app)."""

from benchmarks.servers.base_settings import *  # noqa: F403
