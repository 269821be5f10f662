"""What one operation tells the metrics and the tracer, from the protocol that runs it.

The protocol (``gqlchannels.protocols.base``) makes one ``OperationWatch`` per operation as
it starts running and reports to it the facts it knows: the operation's type and name, that
it was admitted, how it ended. The watch turns them into the counters
(``gqlchannels.metrics.counters``) and the operation's span (``gqlchannels.tracing``), so the
protocol's own logic stays as it was, and neither of those knows a protocol.
"""

from __future__ import annotations

from typing import Any

from . import tracing
from .execution import Executor, OperationRequest
from .metrics import counters


class OperationWatch:
    """The metrics and the span of one operation, from ``begin`` to ``end``.

    Its ``outcome`` is ``cancelled`` unless something else is said before ``end``: an
    operation whose task was cancelled (the client's ``complete``/``stop``, a disconnect)
    reaches ``end`` without being told.
    """

    __slots__ = (
        "_error",
        "_span",
        "_started",
        "counts_deliveries",
        "kind",
        "outcome",
        "protocol",
        "recorder",
    )  # fmt: skip

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        #: The process's recorder as the operation starts (``configure`` runs at start-up).
        self.recorder = counters.recorder
        self.kind = counters.UNKNOWN
        self.outcome = counters.CANCELLED
        #: Whether each result sent is a delivery (subscriptions, while metrics are on).
        self.counts_deliveries = False
        self._error: str | None = None
        self._span = tracing.OperationSpan()
        self._started = False

    async def begin(self, executor: Executor, request: OperationRequest) -> None:
        """Learn the operation's type and name (parsing and validating its document, which the
        cache then holds for the run) and start its span."""
        kind, name = await executor.describe(request)
        self.kind = kind or counters.UNKNOWN
        self.counts_deliveries = self.recorder.enabled and self.kind == counters.SUBSCRIPTION
        self._span = tracing.operation_span(self.kind, name, self.protocol)

    def admitted(self) -> None:
        """The operation passed ``on_operation`` and runs: it is live."""
        self._started = True
        self.recorder.operation_started(self.protocol, self.kind)

    def refused(self) -> None:
        """The operation was refused before it ran."""
        self.outcome = counters.REFUSED

    def failed(self, errors: list[dict[str, Any]]) -> None:
        """The operation ended with an ``error`` message carrying ``errors``."""
        self.outcome = counters.ERROR
        self._error = str(errors[0].get("message")) if errors else None

    def completed(self) -> None:
        """The operation ran to its end."""
        self.outcome = counters.COMPLETED

    def end(self) -> None:
        """Count the outcome and end the span; once, in the operation's own task."""
        self.recorder.operation_ended(self.protocol, self.kind, self.outcome, self._started)
        self._span.end(self.outcome, self._error)
