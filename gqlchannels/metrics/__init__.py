"""Metrics of what gqlchannels serves, for Prometheus (the optional extra
``gqlchannels[metrics]``, i.e. prometheus-client).

Route ``metrics_view`` (``path("metrics/", metrics_view)``) and scrape it: live connections and
operations, connections closed by close code, operations by outcome, events delivered and
their lag from ``broadcast()``, subscriptions ended by overflow, channel-layer faults.
``gqlchannels.metrics.counters`` keeps them; ``gqlchannels.metrics.access`` says who may read
them. Without prometheus-client nothing is counted and the view answers 404.
"""

from .view import metrics_view

__all__ = ["metrics_view"]
