"""Where resolvers run: on the event loop, or batched into Django's database thread.

A plain sync resolver may use the ORM, which must not run on the event loop (Django raises
``SynchronousOnlyOperation``, and a slow query would stall every connection). Running each
such field in the database thread on its own costs a thread hop per field: a 5,000-field
query then held the one database thread for over a second while every other client's ORM
resolvers queued behind it.

Two mechanisms keep hops few:

- A query or mutation whose root fields include a sync resolver is executed in the database
  thread as a whole (``execute_operation``): every sync field it reaches synchronously runs
  there directly, in one hop; async fields return their coroutines to the loop.
- Sync fields reached on the loop (below an async field, or in a subscription's per-event
  execution) are batched (``BatchedSyncResolvers``): every sync field graphql-core starts in
  one synchronous pass (one level, typically) is queued, and the queue runs in the database
  thread in one hop at the end of the loop turn.

Hops grow with the depth of the document, not with its width, and other clients' work
interleaves with it hop by hop. Default resolvers, async resolvers, resolvers marked
``@inline`` and subscription root fields run on the loop, as before.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from typing import Any

from channels.db import database_sync_to_async
from graphql import FieldNode, GraphQLSchema, OperationDefinitionNode, OperationType

#: One queued call: the resolver, its arguments, and the future its field awaits.
_Call = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], "asyncio.Future[Any]"]


def inline(resolver: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a sync resolver as safe to run on the event loop (it never blocks)."""
    resolver._gqlchannels_inline = True  # type: ignore[attr-defined]
    return resolver


def is_marked_inline(resolver: Callable[..., Any]) -> bool:
    """Whether ``resolver`` was marked ``@inline``."""
    return bool(getattr(resolver, "_gqlchannels_inline", False))


def runs_inline(info: Any) -> bool:
    """Whether a field's resolver may run on the loop rather than in the database thread."""
    # A subscription's root field maps an event already in memory: per event and per
    # subscriber, a thread hop would cost more than the resolver itself.
    if info.path.prev is None and info.operation.operation == OperationType.SUBSCRIPTION:
        return True
    field = info.parent_type.fields.get(info.field_name)
    if field is None:  # __typename: graphql-core's own meta field, a constant
        return True
    try:
        return _is_inline_resolver_cached(field.resolve)
    except TypeError:  # an unhashable callable object
        return _is_inline_resolver(field.resolve)


def _is_inline_resolver(resolver: Callable[..., Any] | None) -> bool:
    if resolver is None or is_marked_inline(resolver):
        return True
    return inspect.iscoroutinefunction(resolver) or inspect.isasyncgenfunction(resolver)


#: Decided once per resolver: the check runs for every field of every result.
_is_inline_resolver_cached = functools.lru_cache(maxsize=4096)(_is_inline_resolver)


class BatchedSyncResolvers:
    """graphql-core middleware of one operation: its sync resolvers run in batches, one
    database-thread hop per batch (make one per operation; see the module docstring)."""

    def __init__(self) -> None:
        self._queued: list[_Call] = []
        self._running: set[asyncio.Task[None]] = set()

    def resolve(self, next_: Callable[..., Any], root: Any, info: Any, **args: Any) -> Any:
        """Run the field on the loop when it may, else queue it for the next batch."""
        if runs_inline(info):
            return next_(root, info, **args)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop here: executing in the database thread already
            return next_(root, info, **args)
        future: asyncio.Future[Any] = loop.create_future()
        if not self._queued:
            loop.call_soon(self._start_batch)
        self._queued.append((next_, (root, info), args, future))
        # The bare future, not a coroutine: graphql-core gathers a level's awaitables, and a
        # coroutine would cost a task each.
        return future

    def _start_batch(self) -> None:
        calls, self._queued = self._queued, []
        self._spawn(self._run_batch(calls))

    async def _run_batch(self, calls: list[_Call]) -> None:
        try:
            outcomes = await database_sync_to_async(_call_each)(calls)
        except BaseException as failure:  # the loop is closing, or the hop itself failed
            for *_, future in calls:
                if future.done():
                    continue
                if isinstance(failure, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(failure)
            raise
        for (*_, future), (failed, value) in zip(calls, outcomes, strict=True):
            if future.done():  # its field was cancelled meanwhile
                continue
            if failed:
                future.set_exception(value)
            elif inspect.isawaitable(value):  # a sync resolver may return an awaitable
                self._spawn(_settle(future, value))
            else:
                future.set_result(value)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._running.add(task)
        task.add_done_callback(self._running.discard)


async def execute_operation(
    execute: Callable[..., Any],
    schema: GraphQLSchema,
    operation: OperationDefinitionNode | None,
    kwargs: dict[str, Any],
) -> Any:
    """``execute(**kwargs)`` for a query or mutation: in the database thread, in one hop, when
    its root fields include a sync resolver (``kwargs`` carry BatchedSyncResolvers), else on
    the loop. The result may still be awaitable (async fields): the caller awaits it."""
    if kwargs.get("middleware") and operation is not None and _root_needs_thread(schema, operation):
        return await database_sync_to_async(execute)(**kwargs)
    return execute(**kwargs)


def _root_needs_thread(schema: GraphQLSchema, operation: OperationDefinitionNode) -> bool:
    """Whether a root field of ``operation`` has a resolver that must not run on the loop
    (fragments at the root count as such: checking them is not worth it)."""
    root_type = _root_type(schema, operation)
    if root_type is None:
        return False
    for selection in operation.selection_set.selections:
        if not isinstance(selection, FieldNode):
            return True
        name = selection.name.value
        field = root_type.fields.get(name)
        if field is not None and not _is_inline_resolver(field.resolve):
            return True
    return False


def _root_type(schema: GraphQLSchema, operation: OperationDefinitionNode) -> Any:
    get_root_type = getattr(schema, "get_root_type", None)
    if get_root_type is not None:  # graphql-core 3.3
        return get_root_type(operation.operation)
    return {
        OperationType.QUERY: schema.query_type,
        OperationType.MUTATION: schema.mutation_type,
        OperationType.SUBSCRIPTION: schema.subscription_type,
    }.get(operation.operation)


def _call_each(calls: list[_Call]) -> list[tuple[bool, Any]]:
    """In the database thread: each call's result, or its exception (they stay apart)."""
    outcomes: list[tuple[bool, Any]] = []
    for resolver, positional, named, _future in calls:
        try:
            outcomes.append((False, resolver(*positional, **named)))
        except Exception as error:
            outcomes.append((True, error))
    return outcomes


async def _settle(future: asyncio.Future[Any], awaitable: Any) -> None:
    """Give ``future`` the outcome of ``awaitable`` (awaited on the loop)."""
    try:
        result = await awaitable
    except Exception as error:
        if not future.done():
            future.set_exception(error)
    else:
        if not future.done():
            future.set_result(result)
