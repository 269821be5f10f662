"""OpenTelemetry spans, one per operation (never per event), when ``opentelemetry-api`` is
installed; without it ``operation_span`` returns a span that does nothing.

A span is named ``graphql.<type>`` (``graphql.subscription``), of kind SERVER, with the
attributes ``graphql.operation.type``, ``graphql.operation.name`` (when the operation has
one), ``gqlchannels.protocol`` (the subprotocol) and, once it ends, ``gqlchannels.outcome``;
its status is ERROR when the operation ended with an error. It is the current span while the
operation runs, so spans that resolvers start are its children. Spans go to OpenTelemetry's
global tracer provider unless ``set_tracer_provider`` names another.
"""

from __future__ import annotations

from typing import Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
except ImportError:  # optional: spans only where the project uses OpenTelemetry
    trace = None  # type: ignore[assignment]

#: The instrumentation scope spans are recorded under.
SCOPE = "gqlchannels"
#: The outcome whose span status is ERROR (``gqlchannels.metrics.counters.ERROR``).
ERROR_OUTCOME = "error"


class OperationSpan:
    """One operation's span; this base records nothing (OpenTelemetry is not installed)."""

    def end(self, outcome: str, error: str | None = None) -> None:
        """The operation ended with ``outcome``; ``error`` is the message the client got."""


class _RecordingSpan(OperationSpan):
    """A real span, current in the operation's task from start to end."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: Any) -> None:
        self._span = span
        self._token = otel_context.attach(trace.set_span_in_context(span))

    def end(self, outcome: str, error: str | None = None) -> None:
        """Record the outcome (and status), stop being current, end the span."""
        self._span.set_attribute("gqlchannels.outcome", outcome)
        if outcome == ERROR_OUTCOME:
            self._span.set_status(trace.Status(trace.StatusCode.ERROR, error))
        otel_context.detach(self._token)
        self._span.end()


_NO_SPAN = OperationSpan()
_tracer: Any = trace.get_tracer(SCOPE) if trace is not None else None


def set_tracer_provider(provider: Any) -> None:
    """Record spans with ``provider`` instead of OpenTelemetry's global one (None: the global
    one again), e.g. a provider of its own in a test, as OpenTelemetry's instrumentations
    take ``tracer_provider=``."""
    global _tracer
    if trace is not None:
        _tracer = trace.get_tracer(SCOPE, tracer_provider=provider)


def operation_span(kind: str, name: str, protocol: str) -> OperationSpan:
    """Start the span of one operation of type ``kind`` named ``name`` ("" for none), made
    current in the calling task until its ``end``, which must run in that task."""
    if _tracer is None:
        return _NO_SPAN
    attributes = {"graphql.operation.type": kind, "gqlchannels.protocol": protocol}
    if name:
        attributes["graphql.operation.name"] = name
    span = _tracer.start_span(f"graphql.{kind}", kind=trace.SpanKind.SERVER, attributes=attributes)
    return _RecordingSpan(span)
