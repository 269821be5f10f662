"""The graphql-core glue: schema unwrapping, the document cache, limits and error masking."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from gqlchannels.execution import (
    MASKED_MESSAGE,
    Executor,
    OperationFailed,
    OperationRequest,
    resolve_schema,
)
from tests.schema import schema


async def run(executor: Executor, query: str, **kwargs) -> list[dict]:
    return [result async for result in executor.run(OperationRequest(query, **kwargs), None)]


def test_resolve_schema_takes_a_graphql_core_schema():
    assert resolve_schema(schema) is schema


def test_resolve_schema_imports_a_dotted_path():
    assert resolve_schema("tests.schema.schema") is schema


def test_resolve_schema_unwraps_a_strawberry_style_schema():
    assert resolve_schema(SimpleNamespace(_schema=schema)) is schema


def test_resolve_schema_unwraps_a_graphene_style_schema():
    assert resolve_schema(SimpleNamespace(graphql_schema=schema)) is schema


def test_resolve_schema_refuses_anything_else():
    with pytest.raises(TypeError):
        resolve_schema(object())


async def test_a_document_is_parsed_and_validated_once():
    executor = Executor(schema)
    first = await executor.prepare("{ hello }")
    assert await executor.prepare("{ hello }") is first


async def test_the_document_cache_is_bounded():
    executor = Executor(schema, cache_size=2)
    first = await executor.prepare("{ hello }")
    await executor.prepare("{ boom }")
    await executor.prepare("{ refused }")
    assert await executor.prepare("{ hello }") is not first


async def test_documents_over_the_token_limit_are_refused_before_validation():
    executor = Executor(schema, max_tokens=50)
    with pytest.raises(OperationFailed) as failure:
        await run(executor, "{ " + "hello " * 100 + "}")
    assert "token" in failure.value.errors[0]["message"]


async def test_validation_errors_are_capped():
    executor = Executor(schema, max_validation_errors=5)
    with pytest.raises(OperationFailed) as failure:
        await run(executor, "{ " + " ".join(f"f{i}: nope{i}" for i in range(200)) + " }")
    assert len(failure.value.errors) <= 6  # the cap, plus graphql-core's "too many errors"


async def test_invalid_variables_fail_the_operation_before_execution():
    executor = Executor(schema)
    with pytest.raises(OperationFailed):
        await run(executor, "mutation($t: String!) { echo(text: $t) }", variables={"t": 3})


async def test_unexpected_errors_are_masked_and_logged_at_error(caplog):
    caplog.set_level(logging.ERROR)
    executor = Executor(schema, offload_sync=False)
    [result] = await run(executor, "{ boom }")
    assert result["errors"][0]["message"] == MASKED_MESSAGE
    assert "secret internals" in caplog.text


async def test_unexpected_errors_are_shown_when_debugging():
    executor = Executor(schema, offload_sync=False, debug_errors=lambda: True)
    [result] = await run(executor, "{ boom }")
    assert result["errors"][0]["message"] == "secret internals"
    assert "Traceback" not in result["errors"][0]["message"]
    assert result["errors"][0]["extensions"]["exception"]["stacktrace"]


async def test_subscriptions_yield_one_result_per_event():
    executor = Executor(schema)
    results = await run(executor, "subscription { count(to: 3) }")
    assert [r["data"]["count"] for r in results] == [1, 2, 3]
