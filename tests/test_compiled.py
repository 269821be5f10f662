"""Compiled per-event execution gives exactly graphql-core's results, and steps aside (saying
why, once) where it cannot."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, NamedTuple

import graphql
import pytest
from graphql import ExecutionResult, GraphQLError, parse, validate
from hypothesis import HealthCheck, assume, given, settings

import gqlchannels
from gqlchannels.compiled import CompiledEvents, CompiledPlans
from gqlchannels.compiler import GRAPHQL_32
from gqlchannels.execution import Executor, OperationRequest, _variables_key
from gqlchannels.resolvers import BatchedSyncResolvers
from tests import compiled_schema
from tests.compiled_schema import documents, events, schema
from tests.narrowing import plain_results

CONTEXT = {"who": "ada"}


class Subscription(NamedTuple):
    """graphql-core's executor built for a subscription, and its per-event execution."""

    built: Any
    execute_event: Callable[[Any], Any]


def subscription(
    query: str, variables: dict[str, Any] | None, offload: bool, on: Any = schema
) -> Subscription:
    """What Executor builds for a subscription, on graphql-core 3.3 or 3.2."""
    middleware = [BatchedSyncResolvers()] if offload else None
    document = parse(query)
    if GRAPHQL_32:
        built = graphql.ExecutionContext.build(  # type: ignore[attr-defined]
            on, document, None, CONTEXT, variables, None, middleware=middleware
        )

        def execute_event(event: Any) -> Any:
            return graphql.execute(
                on,
                document,
                root_value=event,
                context_value=CONTEXT,
                variable_values=variables,
                middleware=middleware,
            )

    else:
        executor = graphql.Executor.build(
            on, document, None, CONTEXT, variables, None, middleware=middleware
        )
        assert not isinstance(executor, list), executor
        built = executor

        def execute_event(event: Any) -> Any:
            return graphql.execute_subscription_event(executor.build_per_event_executor(event))

    assert not isinstance(built, list), built
    return Subscription(built, execute_event)


def built_for(query: str, variables: dict[str, Any] | None, offload: bool, on: Any = schema) -> Any:
    return subscription(query, variables, offload, on).built


def compiled(built: Any, offload: bool) -> Any:
    """The compiled event executor of ``built`` (failing when it would fall back)."""

    def fallback(event: Any) -> Any:
        raise AssertionError("compiled execution fell back to graphql-core")

    plans = CompiledPlans(schema, offload)
    return plans.event_executor(built, parse("{ a }"), None, None, fallback)


def outcome(result: ExecutionResult) -> tuple[Any, list[Any], list[Any]]:
    """What a client sees of a result, and the kind of each error (masking depends on it)."""
    errors = result.errors or []
    return (
        result.data,
        [error.formatted for error in errors],
        [type(error.original_error) for error in errors],
    )


def assert_same(query: str, event: Any, variables: dict[str, Any] | None = None) -> Any:
    """Execute ``event`` both ways, under BatchedSyncResolvers and without; return the result."""
    for offload in (True, False):
        built, execute_event = subscription(query, variables, offload)
        expected = execute_event(event)
        actual = compiled(built, offload)(event)
        assert outcome(actual) == outcome(expected)
    return expected


@settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)
@given(document=documents(), event=events())
def test_compiled_results_equal_graphql_cores_for_random_documents_and_events(document, event):
    query, variables = document
    assume(not validate(schema, parse(query)))
    assert_same(query, event, variables)


PERSON = {
    "id": 1,
    "name": "Ada",
    "age": "old",
    "tags": ["a", None, "c"],
    "matrix": [[1, None], None, [2**40]],
    "grid": [[1], [None]],
    "best": None,
    "friends": [{"id": 2, "name": "Bob"}, None, "nobody"],
    "pets": [{"__typename": "Cat", "name": "Tom", "lives": 9}, {"name": "Rex", "barks": True}],
    "color": "PURPLE",
    "odd": 4,
}

CASES = {
    "aliases": ("subscription { person { first: name again: name } }", PERSON, None),
    "arguments_from_literals_and_defaults": (
        'subscription { person { greeting(prefix: "yo") } }',
        {"person": {}},
        None,
    ),
    "arguments_from_variables": (
        "subscription($n: Int = 2, $c: Color) { echo(value: $n, color: $c, list: [1, $n]) }",
        {},
        {"n": 5, "c": "BLUE"},
    ),
    "skip_and_include_with_variables": (
        "subscription($yes: Boolean!, $no: Boolean = false) { person { "
        "name @skip(if: $yes) id @include(if: $no) age @include(if: $yes) @skip(if: $no) } }",
        PERSON,
        {"yes": True},
    ),
    "fragments_merged_in_order": (
        "subscription { person { ...A name ... on Person { id ...A } } }"
        " fragment A on Person { age name }",
        PERSON,
        None,
    ),
    "nested_lists_with_null_items": ("subscription { person { tags matrix } }", PERSON, None),
    "non_null_item_nulls_its_list": ("subscription { person { grid } }", PERSON, None),
    "non_null_propagates_to_the_nearest_nullable_parent": (
        "subscription { person { name best { name } } }",
        PERSON,
        None,
    ),
    "non_null_root_field_nulls_the_data": (
        "subscription { strictPerson { id } }",
        {"strictPerson": None},
        None,
    ),
    "errors_in_execution_order": (
        "subscription { person { boom friends { boom id } strictBoom name } }",
        PERSON,
        None,
    ),
    "wrong_types_for_lists_and_objects": (
        "subscription { person { tags friends { id } } }",
        {"person": {"tags": "abc", "friends": {"id": 1}}},
        None,
    ),
    "union_by_typename_and_is_type_of": (
        "subscription { person { pets { __typename ... on Dog { barks } ... on Cat { lives } } } }",
        PERSON,
        None,
    ),
    "is_type_of_refusing_a_value": (
        "subscription { pets { ... on Dog { name } } }",
        {"pets": [{"__typename": "Dog", "name": "Rex"}]},
        None,
    ),
    "resolve_type_naming_impossible_types": (
        "subscription { things { __typename ... on Part { label } } }",
        {"things": [{"kind": k} for k in ("Part", "Dog", "Nope", "Color", None, 3)]},
        None,
    ),
    "interface_by_default_type_resolver": (
        "subscription { node { id ... on Robot { model } } }",
        {"node": {"__typename": "Robot", "id": 7, "model": None}},
        None,
    ),
    "enum_and_custom_scalar_serialization": (
        "subscription { person { color odd } }",
        PERSON,
        None,
    ),
    "default_resolver_calls_a_callable": (
        "subscription { person { name } }",
        {"person": {"name": lambda info, **args: f"called for {info.path.as_list()}"}},
        None,
    ),
    "attributes_of_objects": (
        "subscription { person { name } }",
        {"person": type("P", (), {"name": "attr"})()},
        None,
    ),
    "an_event_that_is_not_an_object": ("subscription { person { name } }", "nope", None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_construct_gives_graphql_cores_result(case):
    query, event, variables = CASES[case]
    expected = assert_same(query, event, variables)
    assert expected.data is not None or expected.errors  # the case executes something


def test_a_resolver_receives_a_real_info_like_graphql_cores():
    query = "subscription($n: Int) { person { greeting(times: $n) } }"
    expected = assert_same(query, {"person": {}}, {"n": 4})
    assert "greeting on Person at ['person', 'greeting']" in expected.data["person"]["greeting"]


def plain_sync(source: Any, info: Any) -> str:
    return "sync"


def with_plain_resolver() -> Any:
    """The schema with one plain sync resolver (not @inline) below the root."""
    rebuilt = compiled_schema.build()
    rebuilt.type_map["Person"].fields["name"].resolve = plain_sync  # type: ignore[attr-defined]
    return rebuilt


def fallback_marker(event: Any) -> str:
    return "graphql-core"


def test_a_resolver_that_runs_in_the_database_thread_is_not_compiled():
    rebuilt = with_plain_resolver()
    built = built_for("subscription { person { name } }", None, True, rebuilt)
    plans = CompiledPlans(rebuilt, offload_sync=True)
    executor = plans.event_executor(built, parse("{ a }"), None, None, fallback_marker)
    assert executor is fallback_marker


def test_plain_sync_resolvers_are_compiled_when_sync_resolvers_run_inline():
    rebuilt = with_plain_resolver()
    built = built_for("subscription { person { name } }", None, False, rebuilt)
    plans = CompiledPlans(rebuilt, offload_sync=False)
    executor = plans.event_executor(built, parse("{ a }"), None, None, fallback_marker)
    assert executor({"person": {}}).data == {"person": {"name": "sync"}}


def test_the_reason_for_falling_back_is_logged_once_per_document(caplog):
    caplog.set_level(logging.DEBUG, logger="gqlchannels.compiled")
    rebuilt = with_plain_resolver()
    plans = CompiledPlans(rebuilt, offload_sync=True)
    document = parse("subscription Named { person { name } }")
    for _ in range(3):
        built = built_for("subscription Named { person { name } }", None, True, rebuilt)
        plans.event_executor(built, document, None, None, fallback_marker)
    assert [record.getMessage() for record in caplog.records] == [
        "compiled execution not used for Named: the resolver of Person.name runs in the "
        "database thread (it is not marked @gqlchannels.inline)"
    ]


async def async_name(source: Any, info: Any) -> str:
    return "async"


def test_an_async_resolver_is_not_compiled():
    rebuilt = compiled_schema.build()
    rebuilt.type_map["Person"].fields["name"].resolve = async_name  # type: ignore[attr-defined]
    built = built_for("subscription { person { name } }", None, False, rebuilt)
    plans = CompiledPlans(rebuilt, offload_sync=False)
    executor = plans.event_executor(built, parse("{ a }"), None, None, fallback_marker)
    assert executor is fallback_marker


@gqlchannels.inline
def awaitable_name(source: Any, info: Any) -> Any:
    return async_name(source, info)


async def test_an_awaitable_hands_the_subscription_to_graphql_core():
    rebuilt = compiled_schema.build()
    rebuilt.type_map["Person"].fields["name"].resolve = awaitable_name  # type: ignore[attr-defined]
    built, execute_event = subscription("subscription { person { name } }", None, False, rebuilt)
    plans = CompiledPlans(rebuilt, offload_sync=False)
    executor = plans.event_executor(built, parse("{ a }"), None, None, execute_event)
    assert isinstance(executor, CompiledEvents)
    result = executor({"person": {}})
    assert (await result).data == {"person": {"name": "async"}}
    assert executor.plan is None  # the following events go to graphql-core too


def test_subscriptions_with_equal_variables_share_one_plan():
    plans = CompiledPlans(schema, offload_sync=True)
    document = parse("subscription($n: Int) { echo(value: $n) }")
    executors = [
        plans.event_executor(
            built_for("subscription($n: Int) { echo(value: $n) }", {"n": 1}, True),
            document,
            None,
            '{"n":1}',
            fallback_marker,
        )
        for _ in range(2)
    ]
    first, second = executors
    assert isinstance(first, CompiledEvents) and isinstance(second, CompiledEvents)
    assert first.plan is second.plan


def test_a_document_using_defer_is_not_compiled():
    query = "subscription { person { ... @defer(if: false) { name } } }"
    built = built_for(query, None, True)
    plans = CompiledPlans(schema, offload_sync=True)
    executor = plans.event_executor(built, parse(query), None, None, fallback_marker)
    assert executor is fallback_marker


async def two_events(root: Any, info: Any) -> AsyncIterator[dict[str, Any]]:
    yield {"person": {"name": "one"}}
    yield {"person": {"name": "two"}}


def streaming_schema() -> Any:
    rebuilt = compiled_schema.build()
    rebuilt.type_map["Subscription"].fields["person"].subscribe = two_events  # type: ignore[attr-defined]
    return rebuilt


def executor_of(on: Any, compiled_execution: bool) -> Executor:
    return Executor(
        on,
        cache_size=10,
        cache_bytes=10**6,
        validation_rules=(),
        max_tokens=None,
        max_validation_errors=10,
        offload_sync=True,
        compiled_execution=compiled_execution,
    )


async def test_an_executor_runs_subscriptions_compiled_with_the_same_results():
    on = streaming_schema()
    request = OperationRequest("subscription S { person { name boom __typename } }")
    results = {}
    for compiled_execution in (True, False):
        executor = executor_of(on, compiled_execution)
        results[compiled_execution] = await plain_results(executor.run(request, CONTEXT))
    assert results[True] == results[False]
    second = results[True][1]["data"]
    assert second == {"person": {"name": "two", "boom": None, "__typename": "Person"}}


async def test_an_executor_keeps_a_compiled_plan_per_subscription_document():
    executor = executor_of(streaming_schema(), compiled_execution=True)
    request = OperationRequest("subscription S { person { name } }")
    await plain_results(executor.run(request, CONTEXT))
    assert executor.compiled is not None
    [entry] = executor.compiled._documents.values()
    assert entry.reason is None and callable(entry.plans[_variables_key(request)])


def test_compiled_execution_off_leaves_the_executor_without_plans():
    assert executor_of(schema, compiled_execution=False).compiled is None


def test_masking_applies_to_compiled_results_alike():
    executor = executor_of(schema, compiled_execution=True)
    query = "subscription { person { boom } }"
    built = built_for(query, None, True)
    result = compiled(built, True)({"person": {}})
    assert executor.format_result(result)["errors"][0]["message"] == "Internal server error"


def test_a_graphql_error_from_a_resolver_keeps_its_message():
    query = "subscription { person { strictBoom } }"
    result = compiled(built_for(query, None, True), True)({"person": {}})
    assert [error.message for error in result.errors] == ["strict boom"]
    assert isinstance(result.errors[0], GraphQLError) and result.data == {"person": None}


@gqlchannels.inline
def changing_echo(event: Any, info: Any, **args: Any) -> str:
    shown = json.dumps(args["list"])
    args["list"].append("changed")
    return shown


def test_a_resolver_changing_its_list_argument_does_not_change_the_next_calls():
    # Plans are shared by subscriptions with equal variables: nothing may leak between calls.
    rebuilt = compiled_schema.build()
    rebuilt.type_map["Subscription"].fields["echo"].resolve = changing_echo  # type: ignore[attr-defined]
    built = built_for("subscription { echo(value: 1, list: [1, 2]) }", None, True, rebuilt)
    plans = CompiledPlans(rebuilt, offload_sync=True)
    executor = plans.event_executor(built, parse("{ a }"), None, None, fallback_marker)
    assert [executor({}).data for _ in range(2)] == [{"echo": "[1, 2]"}] * 2


def test_a_selection_needing_too_many_closures_is_not_compiled(monkeypatch):
    monkeypatch.setattr("gqlchannels.compiler.MAX_PLAN_FIELDS", 3)
    built = built_for("subscription { person { id name age friends { id } } }", None, True)
    plans = CompiledPlans(schema, offload_sync=True)
    executor = plans.event_executor(built, parse("{ a }"), None, None, fallback_marker)
    assert executor is fallback_marker


def passing_through(next_: Any, root: Any, info: Any, **args: Any) -> Any:
    return next_(root, info, **args)


def test_middleware_of_its_own_keeps_an_operation_on_graphql_core():
    document = parse("subscription { color }")
    if GRAPHQL_32:
        built = graphql.ExecutionContext.build(schema, document, middleware=[passing_through])  # type: ignore[attr-defined]
    else:
        built = graphql.Executor.build(schema, document, middleware=[passing_through])
    plans = CompiledPlans(schema, offload_sync=True)
    executor = plans.event_executor(built, document, None, None, fallback_marker)
    assert executor is fallback_marker
