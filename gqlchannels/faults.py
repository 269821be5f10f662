"""One fault policy for every channel-layer call a process makes.

A Redis restart breaks every pooled connection at once, and an outage fails every call until
Redis answers again. Each hub (one per event loop) keeps one ``LayerFaults`` through which its
joins, leaves, receives, re-joins and replies, and ``broadcast``'s publishes, all go, so that:

- a call that met a stale pooled connection is retried once at once: the server had closed
  it (a restart closes them all), so the command never ran, and redis-py 8 hands such
  connections out unchecked (it skips its check for a closed socket while its maintenance
  notifications are enabled, the default);
- the outage is logged once when calls start failing and once when one succeeds again, with
  the count in between, whichever call noticed;
- the tasks that retry (the hub's receive and re-join) share one backoff: once any call
  succeeds, every task waiting to retry goes on at once instead of finishing its own sleep;
- every call that failed (after that retry) is counted by method
  (``gqlchannels_layer_faults_total``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .metrics import counters

if TYPE_CHECKING:
    from channels.layers import BaseChannelLayer

try:
    from redis.exceptions import ConnectionError as _RedisConnectionError
except ImportError:  # pragma: no cover - channels-redis is optional
    _RedisConnectionError = ConnectionError  # type: ignore[assignment,misc]

logger = logging.getLogger(__name__)

#: What a call on a connection that the server already closed raises.
STALE_CONNECTION_ERRORS: tuple[type[Exception], ...] = (ConnectionError, _RedisConnectionError)
#: Seconds to wait before retrying, by consecutive failures; capped at the last, so that a
#: layer that answers again is noticed within about a second.
RETRY_DELAYS = (0.05, 0.1, 0.25, 0.5, 1.0)


class Outage:
    """A run of failures of one dependency, logged the same way wherever it is met: one
    WARNING when it starts, one when it ends (with the count and the duration), DEBUG between.

    ``started`` and ``ended`` are ``str.format`` templates; ``ended`` may use ``failures`` and
    ``seconds``. The channel-layer policy below and the registry's flusher both use it.
    """

    def __init__(self, log: logging.Logger, started: str, ended: str):
        self.failures = 0
        self._log = log
        self._started = started
        self._ended = ended
        self._since = 0.0

    def failed(self, **details: Any) -> bool:
        """Count one failure; True if it starts the outage (it is then logged)."""
        self.failures += 1
        if self.failures > 1:
            self._log.debug("Still failing: %s", self._started.format(**details))
            return False
        self._since = time.monotonic()
        self._log.warning(self._started.format(**details))
        return True

    def succeeded(self, **details: Any) -> bool:
        """Note a success; True if it ends an outage (it is then logged)."""
        if not self.failures:
            return False
        seconds = time.monotonic() - self._since
        self._log.warning(self._ended.format(failures=self.failures, seconds=seconds, **details))
        self.failures = 0
        return True


class LayerFaults:
    """The health of one event loop's channel layer, and the policy its calls follow.

    ``on_failure`` runs when calls start failing (the hub re-joins its groups then: the layer
    may have lost them).
    """

    def __init__(self, on_failure: Callable[[], None] = lambda: None):
        self.outage = Outage(
            logger,
            "Channel layer failing ({method}: {error}); retrying until it answers",
            "Channel layer answers again ({method}), after {failures} failed call(s) "
            "in {seconds:.1f}s",
        )
        self._on_failure = on_failure
        self._recovered = asyncio.Event()

    @property
    def failures(self) -> int:
        """Calls that failed in a row (0 while the layer answers)."""
        return self.outage.failures

    async def call(self, layer: BaseChannelLayer, method: str, *args: Any) -> Any:
        """Return ``layer.<method>(*args)``; retry it once at once on a stale connection, and
        note the outcome (raising what the call raised, when it failed)."""
        try:
            try:
                result = await getattr(layer, method)(*args)
            except STALE_CONNECTION_ERRORS:
                # redis-py disconnected that connection and put it back on top of its pool,
                # so the retry reconnects it instead of taking another stale one.
                result = await getattr(layer, method)(*args)
        except Exception as exc:
            self._failed(method, exc)
            raise
        self._succeeded(method)
        return result

    async def pause(self) -> None:
        """Wait before retrying a failed call: longer the more calls failed in a row (up to
        ``RETRY_DELAYS[-1]``), and not a moment longer once any call succeeds."""
        if not self.failures:
            return
        delay = RETRY_DELAYS[min(self.failures, len(RETRY_DELAYS)) - 1]
        try:
            async with asyncio.timeout(delay):
                await self._recovered.wait()
        except TimeoutError:
            pass

    def _failed(self, method: str, exc: Exception) -> None:
        counters.recorder.layer_fault(method)
        if self.outage.failed(method=method, error=_describe(exc)):
            self._on_failure()

    def _succeeded(self, method: str) -> None:
        if self.outage.succeeded(method=method):
            self._recovered.set()
            self._recovered = asyncio.Event()


def _describe(exc: Exception) -> str:
    """The exception's type and message (redis-py 8's ``repr`` leaves the message out)."""
    return f"{type(exc).__name__}: {exc}"
