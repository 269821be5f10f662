"""The gqlchannels server with its metrics switched off (``METRICS = False``), so that one
comparison run shows what counting costs: ``--servers gqlchannels,gqlchannels-nometrics``
(the ``gqlchannels`` server counts, with prometheus-client installed as requirements.txt
installs it)."""

from benchmarks.servers.gqlchannels_settings import *  # noqa: F403

GQLCHANNELS = {**GQLCHANNELS, "METRICS": False}  # noqa: F405
