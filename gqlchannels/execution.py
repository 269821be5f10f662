"""The only glue to graphql-core: documents parsed and validated once (cached), then executed.

Everything here uses graphql-core's public API and works on 3.2 and 3.3: the subscription
pipeline is composed from each version's documented parts (3.3's ``Executor.build``, 3.2's
``create_source_event_stream`` + ``execute``), results are treated as await-or-value, and
parser options are passed only where they exist.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import traceback
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import graphql
from django.utils.module_loading import import_string
from graphql import (
    ASTValidationRule,
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    OperationType,
    create_source_event_stream,
    execute,
    get_operation_ast,
    parse,
    specified_rules,
    validate,
)

from . import conf, ignored, limits
from .compiled import CompiledPlans
from .conf import FROM_SETTINGS
from .documents import DocumentCache, PreparedDocument
from .exceptions import OperationFailed
from .json import dumps, preencoded

if TYPE_CHECKING:
    from .protocols.frames import Payload
from .operation_scope import OperationScope, entered
from .resolvers import BatchedSyncResolvers, execute_operation, inline

__all__ = [
    "Executor",
    "OperationFailed",
    "OperationRequest",
    "OperationScope",
    "inline",
    "resolve_schema",
]

logger = logging.getLogger("gqlchannels.execution")

MASKED_MESSAGE = "Internal server error"

#: Parse and validate a new document in a small pool of their own, so a huge or hostile
#: document is time-sliced against the event loop instead of stalling every connection.
_document_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gqlchannels-validate")

#: The parser's limits that MAX_DOCUMENT_TOKENS sets, where this graphql-core has them:
#: tokens, and comments, which the token limit does not count (1 MB of ``#`` lines is
#: 450,000 of them, seconds of parsing and ~86 MB while it lasts).
_TOKEN_LIMITS = tuple(
    name
    for name in ("max_lexical_tokens", "max_comments")
    if name in inspect.signature(parse).parameters
)
#: graphql-core 3.3 builds an executor once per subscription and a light copy per event;
#: 3.2 has no such class and executes each event from the arguments.
_COMPOSABLE_EXECUTOR = getattr(graphql, "Executor", None)


def resolve_schema(schema: Any) -> GraphQLSchema:
    """Return the graphql-core schema behind ``schema``.

    Accepts a ``GraphQLSchema`` (hand-built or Ariadne's), a Strawberry schema (its
    ``_schema``), a Graphene schema (its ``graphql_schema``), or a dotted path to any of them.
    A Strawberry schema's extensions do not run; that is logged once per schema.
    """
    if isinstance(schema, str):
        schema = import_string(schema)
    if isinstance(schema, GraphQLSchema):
        return schema
    for attribute in ("graphql_schema", "_schema"):
        inner = getattr(schema, attribute, None)
        if isinstance(inner, GraphQLSchema):
            ignored.warn_once(schema)
            return inner
    raise TypeError(f"Not a GraphQL schema: {schema!r}")


@dataclass(frozen=True)
class OperationRequest:
    """One operation as a client asked for it (the payload of ``subscribe`` / ``start``)."""

    query: str
    operation_name: str | None = None
    variables: dict[str, Any] | None = None
    extensions: dict[str, Any] | None = None


_executors: weakref.WeakKeyDictionary[GraphQLSchema, Executor] = weakref.WeakKeyDictionary()


class Executor:
    """Runs operations against one schema; owns its document cache and error policy.

    Each keyword left at ``FROM_SETTINGS`` takes its setting as the Executor is built:
    ``cache_size`` DOCUMENT_CACHE_SIZE, ``cache_bytes`` DOCUMENT_CACHE_BYTES, ``max_tokens``
    MAX_DOCUMENT_TOKENS (None: no limit), ``max_validation_errors`` MAX_VALIDATION_ERRORS,
    ``offload_sync`` whether SYNC_RESOLVERS is "thread", ``compiled_execution``
    COMPILED_EXECUTION (subscription events on compiled closures, ``gqlchannels.compiled``),
    and ``validation_rules`` (run next to graphql-core's specified rules) the operation limits
    and VALIDATION_RULES (``gqlchannels.limits``). ``debug_errors`` is asked per error
    (DEBUG_ERRORS, else DEBUG).
    """

    def __init__(
        self,
        schema: GraphQLSchema,
        *,
        cache_size: int = FROM_SETTINGS,
        cache_bytes: int = FROM_SETTINGS,
        validation_rules: Sequence[type[ASTValidationRule]] = FROM_SETTINGS,
        max_tokens: int | None = FROM_SETTINGS,
        max_validation_errors: int = FROM_SETTINGS,
        offload_sync: bool = FROM_SETTINGS,
        compiled_execution: bool = FROM_SETTINGS,
        debug_errors: Callable[[], bool] = conf.debug_errors,
    ):
        self.schema = schema
        self.max_tokens: int | None = conf.given_or_setting(max_tokens, "MAX_DOCUMENT_TOKENS")
        self.max_validation_errors: int = conf.given_or_setting(
            max_validation_errors, "MAX_VALIDATION_ERRORS"
        )
        self.offload_sync: bool = (
            conf.get("SYNC_RESOLVERS") == "thread"
            if offload_sync is FROM_SETTINGS
            else offload_sync
        )
        self.debug_errors = debug_errors
        #: Compiled plans of subscriptions, None when switched off.
        self.compiled: CompiledPlans | None = (
            CompiledPlans(schema, self.offload_sync)
            if conf.given_or_setting(compiled_execution, "COMPILED_EXECUTION")
            else None
        )
        self.validation_rules = (
            *specified_rules,
            *(limits.validation_rules() if validation_rules is FROM_SETTINGS else validation_rules),
        )
        self.cache = DocumentCache(
            conf.given_or_setting(cache_size, "DOCUMENT_CACHE_SIZE"),
            conf.given_or_setting(cache_bytes, "DOCUMENT_CACHE_BYTES"),
        )
        #: Documents being parsed and validated now, by text.
        self._parsing: dict[str, Future[PreparedDocument]] = {}

    @classmethod
    def for_schema(cls, schema: GraphQLSchema) -> Executor:
        """The one Executor (and document cache) of ``schema``, shared by every connection
        and loop, built on first use from the settings read per schema (``gqlchannels.conf``)."""
        executor = _executors.get(schema)
        if executor is None:
            executor = _executors[schema] = cls(schema)
        return executor

    async def prepare(self, query: str) -> PreparedDocument:
        """Parse and validate ``query``, from the cache when it was seen before."""
        prepared = self.cache.get(query)
        if prepared is not None:
            return prepared
        # Concurrent misses on one text (50 clients sending the same new document) wait for
        # one parse. A concurrent future, not an asyncio one: executors serve every loop.
        parsing = self._parsing.get(query)
        if parsing is None:
            parsing = self._parsing[query] = _document_pool.submit(self._parse_and_validate, query)
        try:
            # Shielded: one waiter cancelled must not cancel the parse the others wait for.
            prepared = await asyncio.shield(asyncio.wrap_future(parsing))
            self.cache.put(query, prepared)
        finally:
            # Kept until a waiter has cached the result (a request meanwhile waits for it
            # too); a waiter that leaves early also drops it, so nothing stays behind.
            if self._parsing.get(query) is parsing:
                del self._parsing[query]
        return prepared

    def _parse_and_validate(self, query: str) -> PreparedDocument:
        options = {name: self.max_tokens for name in _TOKEN_LIMITS}
        try:
            document = parse(query, **options)  # type: ignore[arg-type]  # the limits exist
        except GraphQLError as error:
            return PreparedDocument.rejected(query, [error])
        errors = validate(
            self.schema, document, self.validation_rules, max_errors=self.max_validation_errors
        )
        if errors:
            return PreparedDocument.rejected(query, errors)
        return PreparedDocument.valid(query, document)

    async def describe(self, request: OperationRequest) -> tuple[str, str]:
        """The type (``"query"``, ``"mutation"``, ``"subscription"``) and name of the operation
        ``request`` selects, or ``""`` for what it does not select. The document is prepared
        (and cached) here, so running the operation next does not parse it again."""
        name = request.operation_name or ""
        prepared = await self.prepare(request.query)
        if prepared.document is None:
            return "", name
        operation = get_operation_ast(prepared.document, request.operation_name)
        if operation is None:
            return "", name
        return operation.operation.value, operation.name.value if operation.name else name

    async def run(
        self,
        request: OperationRequest,
        context: Any,
        root: Any = None,
        scope: OperationScope | None = None,
    ) -> AsyncIterator[Payload]:
        """Yield each formatted result of ``request``: one for a query or mutation, a stream
        for a subscription. Raise OperationFailed when it ends with errors and no result.

        ``scope`` (a new one when None) is the operation's ``OperationScope``: resolvers reach
        it from ``info`` (``gqlchannels.operation_scope.scope_of``) while the operation runs.
        """
        with entered(scope or OperationScope(), context) as entered_scope:
            async for result in self._run(request, context, root, entered_scope):
                yield result

    async def _run(
        self, request: OperationRequest, context: Any, root: Any, scope: OperationScope
    ) -> AsyncIterator[Payload]:
        prepared = await self.prepare(request.query)
        if prepared.errors:
            logger.debug("Rejected document: %s", prepared.errors[0]["message"])
            # Copies: the cached errors are shared by every operation sending this text.
            raise OperationFailed([dict(error) for error in prepared.errors])
        assert prepared.document is not None
        operation = get_operation_ast(prepared.document, request.operation_name)
        kwargs: dict[str, Any] = {
            "schema": self.schema,
            "document": prepared.document,
            "root_value": root,
            "context_value": context,
            "variable_values": request.variables,
            "operation_name": request.operation_name,
            "middleware": self._middleware(),
        }
        if operation is not None and operation.operation == OperationType.SUBSCRIPTION:
            async for result in self._subscribe(request, kwargs, scope):
                yield result
            return
        result = await execute_operation(execute, self.schema, operation, kwargs)
        if inspect.isawaitable(result):
            result = await result
        yield self._result_or_failure(result)

    async def _subscribe(
        self, request: OperationRequest, kwargs: dict[str, Any], scope: OperationScope
    ) -> AsyncIterator[Payload]:
        """The subscription pipeline, composed here so each event can be executed once for
        every subscription that opted into shared results (``gqlchannels.sharing``): the
        operation's scope says when an event may be shared."""
        variables_key = _variables_key(request)
        source, execute_event = await self._source_stream(kwargs, variables_key)
        share_key = (self, request.query, request.operation_name, variables_key)
        try:
            while True:
                try:
                    event = await anext(source)
                except StopAsyncIteration:
                    return
                except GraphQLError as error:
                    raise OperationFailed(self.format_errors([error])) from None
                except Exception as error:
                    raise OperationFailed(self.format_errors([_as_graphql_error(error)])) from None
                shared = scope.results_for(event)
                if shared is None:
                    result = execute_event(event)
                    if inspect.isawaitable(result):
                        result = await result
                    yield self.format_result(result)
                else:
                    yield await shared.get(
                        (share_key, scope.sharing_key),
                        functools.partial(self._encoded, execute_event, event),
                    )
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _source_stream(
        self, kwargs: dict[str, Any], variables_key: str | None
    ) -> tuple[AsyncIterator[Any], Callable[[Any], Any]]:
        """The subscription's source event stream, and how to execute one of its events
        (compiled when it can be, ``gqlchannels.compiled``; ``variables_key`` identifies the
        variables); raise OperationFailed when the stream cannot be created."""
        if _COMPOSABLE_EXECUTOR is not None:
            built = _COMPOSABLE_EXECUTOR.build(
                kwargs["schema"],
                kwargs["document"],
                kwargs["root_value"],
                kwargs["context_value"],
                kwargs["variable_values"],
                kwargs["operation_name"],
                middleware=kwargs["middleware"],
            )
            if isinstance(built, list):
                raise OperationFailed(self.format_errors(built))
            stream = create_source_event_stream(built)

            def interpreted(event: Any) -> Any:
                return graphql.execute_subscription_event(_per_event_executor(built, event))

            execute_event: Callable[[Any], Any] = interpreted
            if self.compiled is not None:
                execute_event = self.compiled.event_executor(
                    built, kwargs["document"], kwargs["operation_name"], variables_key, interpreted
                )

        else:  # graphql-core 3.2
            stream = create_source_event_stream(
                **{name: value for name, value in kwargs.items() if name != "middleware"}
            )

            def executed(event: Any) -> Any:
                return execute(**{**kwargs, "root_value": event})

            execute_event = executed
            if self.compiled is not None:
                # 3.2's ExecutionContext: built here only for what compiling needs (the
                # coerced variables, fragments, operation); events executed uncompiled
                # build their own, as before.
                context = graphql.ExecutionContext.build(  # type: ignore[attr-defined]
                    kwargs["schema"],
                    kwargs["document"],
                    None,
                    kwargs["context_value"],
                    kwargs["variable_values"],
                    kwargs["operation_name"],
                    middleware=kwargs["middleware"],
                )
                if not isinstance(context, list):  # else the stream reports the errors
                    execute_event = self.compiled.event_executor(
                        context,
                        kwargs["document"],
                        kwargs["operation_name"],
                        variables_key,
                        executed,
                    )

        if inspect.isawaitable(stream):
            stream = await stream
        if isinstance(stream, ExecutionResult):
            raise OperationFailed(self.format_errors(stream.errors or []))
        return aiter(stream), execute_event

    def _middleware(self) -> list[Any] | None:
        """The middleware of one operation: its own batch of sync resolvers (when offloaded)."""
        return [BatchedSyncResolvers()] if self.offload_sync else None

    def _encoded(
        self, execute_event: Callable[[Any], Any], event: Any
    ) -> Payload | Awaitable[Payload]:
        """An event's result, formatted and encoded once for every subscription sharing it."""
        result = execute_event(event)
        if inspect.isawaitable(result):
            return self._encoded_later(result)
        return preencoded(self.format_result(result))

    async def _encoded_later(self, result: Awaitable[ExecutionResult]) -> Payload:
        return preencoded(self.format_result(await result))

    def _result_or_failure(self, result: ExecutionResult) -> dict[str, Any]:
        if result.data is None and result.errors and not _has_path(result.errors):
            # Request errors (unknown operation name, bad variables): nothing was executed.
            raise OperationFailed(self.format_errors(result.errors))
        return self.format_result(result)

    def format_result(self, result: ExecutionResult) -> dict[str, Any]:
        """An ExecutionResult as the ``payload`` of a ``next`` / ``data`` message."""
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            payload["errors"] = self.format_errors(result.errors)
        if result.extensions:
            payload["extensions"] = result.extensions
        return payload

    def format_errors(self, errors: list[GraphQLError]) -> list[dict[str, Any]]:
        """Errors as sent to clients: unexpected exceptions are masked unless debugging."""
        return [self._format_error(error) for error in errors]

    def _format_error(self, error: GraphQLError) -> dict[str, Any]:
        original = error.original_error
        if original is None or isinstance(original, GraphQLError):
            return dict(error.formatted)
        logger.error("Unexpected error in resolver for %s", error.path, exc_info=original)
        formatted: dict[str, Any] = dict(error.formatted)
        if self.debug_errors():
            formatted.setdefault("extensions", {})["exception"] = {
                "type": type(original).__name__,
                "stacktrace": traceback.format_exception(original),
            }
        else:
            formatted["message"] = MASKED_MESSAGE
        return formatted


def _per_event_executor(built: Any, event: Any) -> Any:
    """graphql-core 3.3's executor for one event, with a subfield memo of its own.

    ``build_per_event_executor`` makes a shallow copy that shares the subscription's memo of
    collected subfields, keyed by the identity of each event's new field lists: it grew by
    one entry (about 1 KB) per event for the life of every subscription. The one private
    attribute set here gives each event its own memo (still shared by the items of a list
    within the event). Without the attribute (another graphql-core), nothing is changed and
    tests/test_execution.py's memory test says so.
    """
    executor = built.build_per_event_executor(event)
    if hasattr(executor, "_relevant_sub_fields"):
        executor._relevant_sub_fields = {}
    return executor


def _variables_key(request: OperationRequest) -> str | None:
    """The variables as one canonical text, so equal variables make equal sharing keys."""
    return dumps(request.variables, sort_keys=True) if request.variables else None


def _has_path(errors: list[GraphQLError]) -> bool:
    return any(error.path for error in errors)


def _as_graphql_error(error: Exception) -> GraphQLError:
    return GraphQLError(str(error), original_error=error)
