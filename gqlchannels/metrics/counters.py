"""The counters: what the rest of gqlchannels tells the metrics, and the Prometheus objects
that keep it.

Each fact is reported once, by the code that already knows it (the consumer: connections and
close codes; the protocol: operations, outcomes and deliveries; the hub: overflows; the fault
policy: layer faults), through ``recorder``, this process's ``Recorder``. Until ``configure``
runs (the app's ``ready``), and for good when prometheus-client is not installed or
``GQLCHANNELS['METRICS']`` is False, ``recorder`` is the base ``Recorder``, whose methods do
nothing. Otherwise it is a ``PrometheusRecorder``: its metric objects are made once, and the
child of each label value is looked up once and kept, so a delivery costs two increments and a
clock read, never a label lookup.

Labels are bounded: a protocol, an operation type, an outcome, a close code (codes outside
the standard and gqlchannels' own count as ``other``, since clients choose theirs), a
channel-layer method. Never an operation id, a user, an operation name or a topic.
"""

from __future__ import annotations

import atexit
import os
import time
from typing import Any

from .. import conf
from ..close_codes import CloseCode

try:
    import prometheus_client
    from prometheus_client import multiprocess
except ImportError:  # an optional extra: gqlchannels[metrics]
    prometheus_client = None  # type: ignore[assignment]

#: Operation types, as the ``type`` label spells them ("unknown": the document selects none).
QUERY, MUTATION, SUBSCRIPTION, UNKNOWN = "query", "mutation", "subscription", "unknown"
OPERATION_TYPES = (QUERY, MUTATION, SUBSCRIPTION, UNKNOWN)
#: How operations end: ran to its end; ended with an ``error`` message; stopped by the client
#: (``complete``, ``stop``) or by the connection's end; refused before it ran (``on_operation``,
#: or too many operations on the connection).
COMPLETED, ERROR, CANCELLED, REFUSED = "completed", "error", "cancelled", "refused"
OUTCOMES = (COMPLETED, ERROR, CANCELLED, REFUSED)
#: The subprotocols, so that their series exist (at zero) from the start.
PROTOCOLS = ("graphql-transport-ws", "graphql-ws")
#: The channel-layer methods gqlchannels calls (``gqlchannels.faults``).
LAYER_METHODS = ("group_add", "group_discard", "group_send", "receive", "send")
#: Close codes reported as themselves: the standard ones and gqlchannels' own.
KNOWN_CLOSE_CODES = frozenset(range(1000, 1016)) | frozenset(int(code) for code in CloseCode)
#: What a connection that ended without a close frame on either side reports.
ABNORMAL_CLOSURE = 1006
#: Seconds, publish to send: a healthy server delivers in milliseconds, a saturated one in
#: seconds.
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def close_code_label(code: int | None) -> str:
    """The ``code`` label of a close code: itself when known, ``other`` otherwise, and 1006
    (abnormal closure) for a connection that ended with no close code at all."""
    if code is None:
        return str(ABNORMAL_CLOSURE)
    return str(code) if code in KNOWN_CLOSE_CODES else "other"


class Recorder:
    """Where every hook reports; this base records nothing (prometheus-client missing, or
    ``METRICS`` off), so a hook costs one call that returns at once."""

    #: Whether anything is recorded (the view answers 404 when not).
    enabled = False

    def connection_opened(self, protocol: str) -> None:
        """A connection negotiated ``protocol``."""

    def connection_closed(self, protocol: str | None, code: int | None) -> None:
        """An accepted connection ended with close ``code`` (ours, or the client's; None when
        neither side sent one); ``protocol`` is None when none was negotiated."""

    def operation_started(self, protocol: str, kind: str) -> None:
        """An operation of type ``kind`` was admitted and runs."""

    def operation_ended(self, protocol: str, kind: str, outcome: str, started: bool) -> None:
        """An operation ended with ``outcome``; ``started`` if ``operation_started`` was told."""

    def delivered(self, sent_at: float | None) -> None:
        """A subscription's result frame was sent; ``sent_at`` is when its event was published
        (``time.time()`` in ``broadcast``), None when the result came from elsewhere."""

    def overflowed(self) -> None:
        """A subscription fell too far behind and was ended."""

    def layer_fault(self, method: str) -> None:
        """A channel-layer call failed (after the fault policy's retry)."""


def _children(metric: Any, *label_sets: tuple[str, ...]) -> dict[tuple[str, ...], Any]:
    """The children of ``metric`` for ``label_sets``, made now so their series start at 0."""
    return {labels: metric.labels(*labels) for labels in label_sets}


def _child(cache: dict[tuple[str, ...], Any], metric: Any, *labels: str) -> Any:
    """The child of ``metric`` for ``labels``, from ``cache`` (made and kept on first use)."""
    child = cache.get(labels)
    if child is None:
        child = cache[labels] = metric.labels(*labels)
    return child


class PrometheusRecorder(Recorder):
    """Records into prometheus-client metrics named ``gqlchannels_*`` in ``registry``.

    The gauges sum the live processes' values in multi-process mode (``livesum``); counters
    and the histogram add every process's, as prometheus-client does.
    """

    enabled = True

    def __init__(self, registry: Any = None) -> None:
        assert prometheus_client is not None
        registry = prometheus_client.REGISTRY if registry is None else registry
        gauge, counter = prometheus_client.Gauge, prometheus_client.Counter
        self._connections = gauge(
            "gqlchannels_connections_live",
            "WebSocket connections open now, by negotiated subprotocol.",
            ["protocol"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self._closed = counter(
            "gqlchannels_connections_closed",
            "WebSocket connections ended, by close code (sent by either side; 1006: none).",
            ["code"],
            registry=registry,
        )
        self._operations = gauge(
            "gqlchannels_operations_live",
            "Operations running now, by subprotocol and operation type.",
            ["protocol", "type"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self._ended = counter(
            "gqlchannels_operations_ended",
            "Operations ended, by type and outcome (completed, error, cancelled, refused).",
            ["type", "outcome"],
            registry=registry,
        )
        delivered = counter(
            "gqlchannels_events_delivered",
            "Result frames sent for subscriptions.",
            registry=registry,
        )
        lag = prometheus_client.Histogram(
            "gqlchannels_delivery_lag_seconds",
            "Seconds from broadcast() to the send of the result frame, per delivery.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        overflows = counter(
            "gqlchannels_subscription_overflows",
            "Subscriptions ended because they fell SUBSCRIPTION_BUFFER_SIZE events behind.",
            registry=registry,
        )
        self._faults = counter(
            "gqlchannels_layer_faults",
            "Channel-layer calls that failed, by method.",
            ["method"],
            registry=registry,
        )
        self._connection_children = _children(self._connections, *((p,) for p in PROTOCOLS))
        self._closed_children: dict[tuple[str, ...], Any] = {}
        self._operation_children = _children(
            self._operations, *((p, t) for p in PROTOCOLS for t in OPERATION_TYPES)
        )
        self._ended_children = _children(
            self._ended, *((t, o) for t in OPERATION_TYPES for o in OUTCOMES)
        )
        self._fault_children = _children(self._faults, *((m,) for m in LAYER_METHODS))
        # Bound methods, so the per-delivery path looks nothing up.
        self._count_delivery = delivered.inc
        self._observe_lag = lag.observe
        self._overflows = overflows

    def connection_opened(self, protocol: str) -> None:
        """Count the connection as live under ``protocol``."""
        _child(self._connection_children, self._connections, protocol).inc()

    def connection_closed(self, protocol: str | None, code: int | None) -> None:
        """Count the close under its code; it is no longer live."""
        if protocol is not None:
            _child(self._connection_children, self._connections, protocol).dec()
        _child(self._closed_children, self._closed, close_code_label(code)).inc()

    def operation_started(self, protocol: str, kind: str) -> None:
        """Count the operation as live."""
        _child(self._operation_children, self._operations, protocol, kind).inc()

    def operation_ended(self, protocol: str, kind: str, outcome: str, started: bool) -> None:
        """Count the outcome; the operation is no longer live."""
        if started:
            _child(self._operation_children, self._operations, protocol, kind).dec()
        _child(self._ended_children, self._ended, kind, outcome).inc()

    def delivered(self, sent_at: float | None) -> None:
        """Count the delivery, and its lag when its event's publish time is known (a clock
        ahead of ours counts as no lag)."""
        self._count_delivery()
        if sent_at is not None:
            self._observe_lag(max(0.0, time.time() - sent_at))

    def overflowed(self) -> None:
        """Count the subscription ended by overflow."""
        self._overflows.inc()

    def layer_fault(self, method: str) -> None:
        """Count the failed call under its method."""
        _child(self._fault_children, self._faults, method).inc()


#: This process's recorder; hooks read it at each report (``configure`` replaces it).
recorder: Recorder = Recorder()
_prometheus: PrometheusRecorder | None = None


def available() -> bool:
    """Whether prometheus-client is installed."""
    return prometheus_client is not None


def multiprocess_directory() -> str | None:
    """``PROMETHEUS_MULTIPROC_DIR`` when set: the processes of one service write their values
    there, and a scrape of any of them adds them up."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")


def configure() -> Recorder:
    """Choose this process's recorder from ``GQLCHANNELS['METRICS']`` (read here, at start-up)
    and whether prometheus-client is installed; the metric objects are made once per process
    however often this runs. Returns the recorder now in use."""
    global recorder, _prometheus
    if conf.get("METRICS") is not True or prometheus_client is None:
        recorder = Recorder()
        return recorder
    if _prometheus is None:
        _prometheus = PrometheusRecorder()
        if multiprocess_directory():
            atexit.register(_forget_live_values)
    recorder = _prometheus
    return recorder


def _forget_live_values() -> None:
    """At a clean exit, take this process's live gauges out of the multi-process sums (its
    counters stay: they are history). Read at exit: a forked worker has its own pid."""
    multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
