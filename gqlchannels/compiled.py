"""Compiled per-event execution: which subscriptions execute their events on closures
(``gqlchannels.compiler``) instead of graphql-core's interpreter, and the cache of those
closures.

Without shared results, every subscriber executes every event through graphql-core, which
re-collects the fields, rebuilds each field's ``info`` and walks the types each time: in
fan-out that is a quarter to two fifths of the server's CPU. A subscription's document,
operation and variables are fixed for its life, so its selection is compiled once per
(document, operation name, variables) and shared by every subscription asking the same;
what runs per event is only resolving and completing values. Results are the
``ExecutionResult`` graphql-core would have produced (same data, same errors in the same
order), so formatting and masking stay one path.

A subscription is compiled when (each reason not to is logged at DEBUG once per document):

- the document has no ``@defer``/``@stream`` and the operation does not disable error
  propagation; the executor has no middleware but gqlchannels' own, and default field and
  type resolvers;
- every field the selection reaches (with the subscription's variables) resolves on the
  loop under BatchedSyncResolvers, so calling it directly is what the middleware would do:
  graphql-core's default resolver, a resolver marked ``@gqlchannels.inline``, the
  subscription field itself, or (``SYNC_RESOLVERS = "inline"``) any sync resolver; no
  resolver, ``resolve_type`` or ``is_type_of`` is an async function.

An awaitable met while executing an event (a sync resolver that returned one, a coroutine
in the event) ends compiled execution for that subscription: that event and the following
ones are executed by graphql-core, which awaits it. A resolver that is called again then
must not mind being called twice for that event, which ``@inline`` resolvers (plain reads)
do not.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from graphql import (
    DirectiveNode,
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    Visitor,
    default_field_resolver,
    default_type_resolver,
    visit,
)

from .compiler import GRAPHQL_32, Fields, NeedsAsync, Run, Unsupported, compile_subscription
from .resolvers import BatchedSyncResolvers

logger = logging.getLogger("gqlchannels.compiled")

#: Documents (by identity and operation name) whose compiled plans are kept.
MAX_DOCUMENTS = 128
#: Plans kept per document, one per distinct set of variables.
MAX_VARIABLE_SETS = 16

#: An event executor: one event in, its result (or an awaitable of it) out.
ExecuteEvent = Callable[[Any], Any]


class _DocumentPlans:
    """The plans of one document and operation, by variables; or why it is not compiled."""

    __slots__ = ("document", "logged", "plans", "reason")

    def __init__(self, document: DocumentNode, reason: str | None):
        self.document = document  # kept, so that its id is not reused while it is a key
        self.reason = reason
        self.plans: OrderedDict[str | None, Fields | str] = OrderedDict()
        self.logged = False

    def fall_back(self, operation: OperationDefinitionNode, reason: str) -> None:
        """Say once per document why (some of) its subscriptions are not compiled."""
        if not self.logged:
            self.logged = True
            name = operation.name.value if operation.name else "an anonymous subscription"
            logger.debug("compiled execution not used for %s: %s", name, reason)


class CompiledPlans:
    """The compiled plans of one schema's subscriptions (an ``Executor`` owns one), within
    ``MAX_DOCUMENTS`` documents of ``MAX_VARIABLE_SETS`` variable sets each, least recently
    used out first. ``offload_sync`` is whether the executor's BatchedSyncResolvers send
    plain sync resolvers to the database thread. Used from the event loop only."""

    def __init__(self, schema: GraphQLSchema, offload_sync: bool):
        self.schema = schema
        self.offload_sync = offload_sync
        self._documents: OrderedDict[tuple[int, str | None], _DocumentPlans] = OrderedDict()

    def event_executor(
        self,
        built: Any,
        document: DocumentNode,
        operation_name: str | None,
        variables_key: str | None,
        fallback: ExecuteEvent,
    ) -> ExecuteEvent:
        """How to execute the events of the subscription graphql-core's executor ``built``
        (3.3's ``Executor``, 3.2's ``ExecutionContext``) was built for: compiled when it can
        be (see the module docstring), else ``fallback`` (graphql-core's per-event
        execution). ``variables_key`` identifies the subscription's variables (equal
        variables, equal keys)."""
        entry = self._entry(built, document, operation_name)
        if entry.reason is not None:
            entry.fall_back(built.operation, entry.reason)
            return fallback
        plan = entry.plans.get(variables_key)
        if plan is None:
            plan = self._compile(built)
            entry.plans[variables_key] = plan
            while len(entry.plans) > MAX_VARIABLE_SETS:
                entry.plans.popitem(last=False)
        else:
            entry.plans.move_to_end(variables_key)
        if isinstance(plan, str):
            entry.fall_back(built.operation, plan)
            return fallback
        return CompiledEvents(plan, built, fallback, entry)

    def _entry(
        self, built: Any, document: DocumentNode, operation_name: str | None
    ) -> _DocumentPlans:
        key = (id(document), operation_name)
        entry = self._documents.get(key)
        if entry is not None and entry.document is document:
            self._documents.move_to_end(key)
            return entry
        entry = self._documents[key] = _DocumentPlans(document, _document_reason(built, document))
        while len(self._documents) > MAX_DOCUMENTS:
            self._documents.popitem(last=False)
        return entry

    def _compile(self, built: Any) -> Fields | str:
        """The subscription's plan, or why there is none."""
        try:
            return compile_subscription(
                self.schema,
                _fragments(built),
                built.operation,
                built.variable_values,
                self.offload_sync,
            )
        except Unsupported as unsupported:
            return str(unsupported)
        except RecursionError:
            return "the selection is nested too deeply"


class CompiledEvents:
    """One subscription's event executor on a compiled plan (``plan``; None once an
    awaitable turned up: from then on it is graphql-core's, ``fallback``)."""

    __slots__ = ("entry", "fallback", "fragments", "operation", "plan", "tail")

    def __init__(self, plan: Fields, built: Any, fallback: ExecuteEvent, entry: _DocumentPlans):
        self.plan: Fields | None = plan
        self.fallback = fallback
        self.entry = entry
        self.operation = built.operation
        self.fragments = _fragments(built)
        # What every info has after the root value, as graphql-core builds it.
        self.tail: tuple[Any, ...] = (
            built.operation,
            built.variable_values,
            built.context_value,
            built.is_awaitable,
        )
        if not GRAPHQL_32:
            self.tail += (built.abort_signal, built.async_helpers)

    def __call__(self, event: Any) -> Any:
        plan = self.plan
        if plan is None:
            return self.fallback(event)
        run = Run(event, self.fragments, self.tail)
        try:
            data: dict[str, Any] | None = plan(event, None, run)
        except NeedsAsync as needs:
            needs.discard()
            self.plan = None
            self.entry.fall_back(self.operation, "a resolver or the event produced an awaitable")
            return self.fallback(event)
        except GraphQLError as error:  # a non-null root field failed: no data at all
            run.errors.append(error)
            data = None
        if GRAPHQL_32 and run.errors:  # 3.2 sorts them, as its build_response does
            run.errors.sort(key=_error_order)
        return ExecutionResult(data, run.errors or None)


def _error_order(error: GraphQLError) -> tuple[Any, ...]:
    return (error.locations or [], error.path or [], error.message)


class _DirectiveNames(Visitor):
    """Collects the names of the directives a document uses."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def enter_directive(self, node: DirectiveNode, *_args: Any) -> None:
        """Note the directive's name."""
        self.names.add(node.name.value)


def _fragments(built: Any) -> dict[str, Any]:
    """The fragment definitions by name (3.3's ``fragments`` hold more than that)."""
    return built.fragments if GRAPHQL_32 else built.fragment_definitions  # type: ignore[no-any-return]


def _document_reason(built: Any, document: DocumentNode) -> str | None:
    """Why no subscription of ``document`` (as ``built``) is compiled, or None."""
    if getattr(built, "abort_signal", None) is not None or getattr(built, "hooks", None):
        return "the executor has an abort signal or hooks"
    if built.field_resolver is not default_field_resolver:
        return "the executor has a field resolver of its own"
    if built.type_resolver is not default_type_resolver:
        return "the executor has a type resolver of its own"
    manager = built.middleware_manager
    if manager is not None and not all(
        isinstance(middleware, BatchedSyncResolvers) for middleware in manager.middlewares
    ):
        return "the operation has middleware of its own"
    if not getattr(built, "error_propagation", True):
        return "the operation disables error propagation"
    names = _DirectiveNames()
    visit(document, names)
    used = names.names & {"defer", "stream"}
    if used:
        return f"the document uses @{' and @'.join(sorted(used))}"
    return None
