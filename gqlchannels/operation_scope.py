"""The scope of one running operation: what ``listen`` tells about it, in one explicit object.

The executor (``gqlchannels.execution``) makes one ``OperationScope`` per operation and keeps
it, for the operation's life, under the identity of the operation's context object: the one
object graphql-core hands, untouched, to every resolver of that operation as
``info.context``. ``listen(info, ...)`` finds the scope with ``scope_of(info)``; it records
the topics there (the scope passes them on to whoever asked, the live registry through the
``operation_topics`` signal) and offers its events for shared results there, which the
executor reads back from the scope it made. So nothing travels through the user's context
object or through ambient task state, and a project's ``get_context`` may return any object.

The one rule this needs: each operation has a context object of its own (the default
``GraphQLWSContext`` is made per operation). When a project hands one object to several
operations at once, ``scope_of`` cannot tell them apart and answers None: those operations'
topics are not shown and their results are not shared, which is safe.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from .sharing import SharedResults, SharingSource


class EventSource(Protocol):
    """What an operation scope reads from the listener its events come from."""

    current_sent_at: float | None


#: Told every topic the operation listens to so far, each time that set grows.
TopicsCallback = Callable[[frozenset[str]], None]


@dataclass(eq=False)
class OperationScope:
    """One operation's topics and its source of shared results.

    ``on_topics`` (given by whoever runs the operation: the protocol, for the consumer's
    ``operation_topics`` signal) is called with all the topics so far whenever new ones are
    listened to.
    """

    operation_id: str = ""
    on_topics: TopicsCallback | None = None
    topics: set[str] = field(default_factory=set)
    #: The listener whose events may be shared (``listen(..., shared=True)``), if any.
    shared_source: SharingSource | None = None
    #: What else than the operation its shared results depend on (``listen``'s key).
    sharing_key: Hashable = ()
    #: The listener the operation takes its events from (``listen``), if any: the publish
    #: time of the event it handed out last gives each result's delivery lag.
    event_source: EventSource | None = None

    def listens_to(self, topics: Iterable[str]) -> None:
        """Record topics the operation listens to; tell ``on_topics`` when any are new."""
        new = set(topics) - self.topics
        if not new:
            return
        self.topics |= new
        if self.on_topics is not None:
            self.on_topics(frozenset(self.topics))

    def share(self, source: SharingSource | None, key: Hashable = ()) -> None:
        """Make ``source``'s events shareable for this operation, among operations whose
        sharing ``key`` is equal (None to stop)."""
        self.shared_source = source
        self.sharing_key = key

    def event_sent_at(self) -> float | None:
        """When the event the operation received last was published (None: not known)."""
        source = self.event_source
        return None if source is None else source.current_sent_at

    def results_for(self, event: Any) -> SharedResults | None:
        """The ``SharedResults`` of ``event`` when the operation may share its result: only
        when ``event`` is the very object the offered source handed out last."""
        source = self.shared_source
        if source is None or source.current_event is not event:
            return None
        return source.current_results


#: Live scopes by ``id(context)``; None where two live operations share one context object.
_scopes: dict[int, OperationScope | None] = {}
#: How many live operations use each context object (almost always one).
_users: dict[int, int] = {}


@contextmanager
def entered(scope: OperationScope, context: Any) -> Iterator[OperationScope]:
    """Make ``scope`` findable from ``context`` while the block runs (the operation's life).

    The entry holds no reference to ``context``, but the running operation does, so its id
    cannot be reused meanwhile.
    """
    key = id(context)
    count = _users.get(key, 0) + 1
    _users[key] = count
    _scopes[key] = scope if count == 1 else None
    try:
        yield scope
    finally:
        remaining = _users[key] - 1
        if remaining:
            _users[key] = remaining  # still shared: stays ambiguous until all have left
        else:
            del _users[key], _scopes[key]


def scope_of(info: Any) -> OperationScope | None:
    """The scope of the operation a resolver runs in, found from its ``info``."""
    return scope_of_context(getattr(info, "context", None))


def scope_of_context(context: Any) -> OperationScope | None:
    """The scope of the running operation whose context object is ``context``."""
    return _scopes.get(id(context))
