"""Operation limits for every schema: depth, aliases and cost, plus rules from settings."""

from __future__ import annotations

import pytest
from django.test import override_settings
from graphql import build_schema, get_introspection_query

from gqlchannels.consumers import GraphQLWSConsumer
from gqlchannels.execution import Executor, resolve_schema
from gqlchannels.testing import LEGACY_WS, TRANSPORT_WS, GraphQLWSCommunicator, OperationError
from tests.schema import schema as test_schema

TREE = build_schema(
    """
    type Query { node: Node nodes: [Node] }
    type Node { name: String child: Node children: [Node] }
    """
)


def nested(depth: int) -> str:
    """A query ``depth`` fields deep: node { child { child ... { name } } }."""
    return "{ node { " + "child { " * (depth - 2) + "name" + " }" * (depth - 1) + " }"


async def errors_of(query: str, **limits) -> list[str]:
    """The validation messages of ``query`` on TREE with the settings' limits and ``limits``."""
    with override_settings(GQLCHANNELS=limits):
        executor = Executor(TREE)
    prepared = await executor.prepare(query)
    return [error["message"] for error in prepared.errors]


# -- depth --------------------------------------------------------------------------------


async def test_a_query_deeper_than_max_query_depth_is_rejected():
    assert await errors_of(nested(6), MAX_QUERY_DEPTH=5) == [
        "The operation is nested 6 fields deep: the limit is 5."
    ]


async def test_a_query_as_deep_as_max_query_depth_passes():
    assert await errors_of(nested(5), MAX_QUERY_DEPTH=5) == []


async def test_depth_follows_fragment_spreads():
    query = "query Deep { node { ...A } } fragment A on Node { child { ...B } } "
    query += "fragment B on Node { child { child { name } } }"
    assert await errors_of(query, MAX_QUERY_DEPTH=4) == [
        "Operation 'Deep' is nested 5 fields deep: the limit is 4."
    ]


# -- aliases ------------------------------------------------------------------------------


async def test_more_aliases_than_max_aliases_are_rejected():
    query = "{ " + " ".join(f"a{n}: node {{ name }}" for n in range(4)) + " }"
    assert await errors_of(query, MAX_ALIASES=3) == [
        "The operation uses 4 aliases: the limit is 3."
    ]


async def test_aliases_inside_a_fragment_count_once_per_spread():
    query = "{ node { ...F } nodes { ...F } } fragment F on Node { a: name b: name }"
    assert await errors_of(query, MAX_ALIASES=3) == [
        "The operation uses 4 aliases: the limit is 3."
    ]


# -- cost ---------------------------------------------------------------------------------


async def test_more_fields_than_max_query_cost_are_rejected():
    query = "{ node { name child { name child { name } } } }"  # 6 fields
    assert await errors_of(query, MAX_QUERY_COST=5) == [
        "The operation asks for 6 fields, fragments expanded: the limit is 5."
    ]


async def test_cost_counts_each_fragment_once_per_spread_however_many_it_expands_to():
    # Each fragment spreads the previous one twice: 2 ** 30 fields in about 60 lines.
    fragments = ["fragment F0 on Node { name }"] + [
        f"fragment F{n} on Node {{ ...F{n - 1} ...F{n - 1} }}" for n in range(1, 31)
    ]
    query = "{ node { ...F30 } } " + " ".join(fragments)
    assert await errors_of(query) == [
        f"The operation asks for {2**30 + 1} fields, fragments expanded: the limit is 2000."
    ]


async def test_a_fragment_cycle_is_reported_once_and_does_not_recurse():
    query = "{ node { ...A } } fragment A on Node { child { ...B } } "
    query += "fragment B on Node { child { ...A } }"
    messages = await errors_of(query)
    assert len(messages) == 1 and "Cannot spread fragment 'A' within itself" in messages[0]


# -- the defaults -------------------------------------------------------------------------


async def test_an_ordinary_query_passes_the_default_limits():
    query = "query Page { node { name child { name children { name } } } nodes { name } }"
    assert await errors_of(query) == []


@pytest.mark.parametrize("schema", [TREE, test_schema, "demo_project.chat.schema.schema"])
async def test_the_full_introspection_query_passes_the_default_limits(schema):
    query = get_introspection_query(
        descriptions=True,
        specified_by_url=True,
        directive_is_repeatable=True,
        schema_description=True,
        input_value_deprecation=True,
    )
    prepared = await Executor(resolve_schema(schema)).prepare(query)
    assert prepared.errors == ()


async def test_limits_set_to_none_are_off():
    query = "{ " + " ".join(f"a{n}: node {{ name }}" for n in range(100)) + " }"
    assert await errors_of(query, MAX_ALIASES=None, MAX_QUERY_COST=None) == []


# -- rules from settings ------------------------------------------------------------------


async def test_validation_rules_from_settings_run_next_to_the_specified_ones():
    messages = await errors_of(
        "{ nodes { name } missing }", VALIDATION_RULES=["tests.validation_rules.NoNodesRule"]
    )
    assert messages == [
        "nodes is not for clients.",
        "Cannot query field 'missing' on type 'Query'.",
    ]


# -- over the WebSocket -------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_an_operation_over_the_limits_gets_an_error_over_both_protocols(protocol):
    application = GraphQLWSConsumer.as_asgi(schema=test_schema)
    query = "{ " + " ".join(f"a{n}: hello" for n in range(31)) + " }"
    async with GraphQLWSCommunicator(application, protocol=protocol, timeout=5.0) as client:
        with pytest.raises(OperationError) as failure:
            await client.execute(query)
        assert failure.value.errors[0]["message"] == (
            "The operation uses 31 aliases: the limit is 30."
        )
        assert await client.execute("{ hello }") == {"data": {"hello": "Hello, world!"}}
