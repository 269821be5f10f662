"""Django app configuration: registers gqlchannels' system checks, connection tracking and
the metrics."""

from django.apps import AppConfig


class GqlChannelsConfig(AppConfig):
    """The ``gqlchannels`` app; add ``"gqlchannels"`` to ``INSTALLED_APPS``."""

    name = "gqlchannels"
    verbose_name = "GraphQL over WebSocket"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Register the system checks (``gqlchannels.E001``...) and, when
        ``GQLCHANNELS['TRACKING']`` is on, the receivers that keep the live registry; when
        ``END_SESSIONS`` is on, those that close the connections of a user who logged out;
        and the metrics' recorder (``METRICS``, when prometheus-client is installed)."""
        from . import checks, conf, sessions, tracking
        from .metrics import counters

        checks.register()
        counters.configure()
        if conf.get("TRACKING") is True:
            tracking.connect()
        if conf.get("END_SESSIONS") is True:
            sessions.connect()
