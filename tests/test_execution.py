"""The graphql-core glue: schema unwrapping, the document cache, limits and error masking."""

from __future__ import annotations

import asyncio
import gc
import logging
import subprocess
import sys
import tracemalloc
from types import SimpleNamespace
from typing import Any

import pytest
from graphql import OperationDefinitionNode

from gqlchannels.documents import NODE_BYTES
from gqlchannels.execution import (
    MASKED_MESSAGE,
    Executor,
    OperationFailed,
    OperationRequest,
    resolve_schema,
)
from tests import strawberry_schema
from tests.narrowing import aclose, plain_results
from tests.schema import schema


async def run(executor: Executor, query: str, **kwargs) -> list[dict[str, Any]]:
    return await plain_results(executor.run(OperationRequest(query, **kwargs), None))


def test_resolve_schema_takes_a_graphql_core_schema():
    assert resolve_schema(schema) is schema


def test_resolve_schema_imports_a_dotted_path():
    assert resolve_schema("tests.schema.schema") is schema


def test_resolve_schema_unwraps_a_strawberry_style_schema():
    assert resolve_schema(SimpleNamespace(_schema=schema)) is schema


def test_resolve_schema_unwraps_a_graphene_style_schema():
    assert resolve_schema(SimpleNamespace(graphql_schema=schema)) is schema


def test_resolving_a_strawberry_schema_logs_once_which_extensions_will_not_run(caplog):
    caplog.set_level(logging.WARNING, logger="gqlchannels.execution")
    strawberry = strawberry_schema.with_extensions()
    assert resolve_schema(strawberry) is resolve_schema(strawberry) is strawberry._schema
    [warning] = [record.getMessage() for record in caplog.records]
    assert "do not run" in warning and "MaskErrors" in warning


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


def comment_padded(number: int, lines: int = 2_000) -> str:
    """A distinct document padded with comments: each comment is one lexical token."""
    return "#\n" * lines + f"{{ n{number}: hello }}"


def over_the_token_limit(number: int, tokens: int = 2_600) -> str:
    """A distinct document that fails to parse, after many comments and tokens were lexed."""
    return comment_padded(number) + " { " + "hello " * tokens + "}"


def is_plain_data(value: object) -> bool:
    if isinstance(value, dict):
        return all(isinstance(key, str) and is_plain_data(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return all(is_plain_data(item) for item in value)
    return isinstance(value, str | int | float | bool | type(None))


@pytest.mark.parametrize("make_document", [comment_padded, over_the_token_limit])
async def test_the_document_cache_holds_no_more_memory_than_its_budget(make_document):
    budget = 64 * 1024
    executor = Executor(schema, max_tokens=2_500, cache_bytes=budget)
    await executor.prepare("{ hello }")  # the parsing threads exist before measuring
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for number in range(6):
            await executor.prepare(make_document(number))
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert executor.cache.bytes <= budget
    assert held < 4 * budget  # with tokens kept: about 0.5 MB per document


async def test_the_cache_counts_each_document_by_its_text_and_its_nodes():
    executor = Executor(schema)
    small = await executor.prepare("{ hello }")
    large = await executor.prepare("{ " + "hello " * 100 + "}")
    assert executor.cache.bytes == small.size + large.size
    assert large.size > small.size + 100 * NODE_BYTES


async def test_a_document_larger_than_the_cache_budget_is_not_kept():
    executor = Executor(schema, cache_bytes=1024)
    await executor.prepare('{ echo(text: "' + "x" * 2048 + '") }')
    assert len(executor.cache) == 0
    assert executor.cache.bytes == 0


async def test_a_cached_parse_error_is_plain_data_without_traceback_or_tokens():
    executor = Executor(schema, max_tokens=50)
    prepared = await executor.prepare(comment_padded(1, lines=10) + "{ " + "hello " * 50 + "}")
    assert prepared.document is None
    assert prepared.errors and is_plain_data(prepared.errors)


async def test_a_cached_document_keeps_its_locations_but_not_its_tokens():
    executor = Executor(schema)
    prepared = await executor.prepare("{ hello }")
    assert prepared.document is not None and prepared.document.loc is not None
    operation = prepared.document.definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    field = operation.selection_set.selections[0]
    assert field.loc is not None
    assert (field.loc.start, field.loc.end) == (2, 7)
    assert field.loc.start_token is None and prepared.document.loc.start_token is None


async def test_resolver_errors_report_locations_from_a_cached_document():
    executor = Executor(schema, offload_sync=False)
    first = await run(executor, "query {\n  boom\n}")
    second = await run(executor, "query {\n  boom\n}")
    assert second[0]["errors"][0]["locations"] == [{"line": 2, "column": 3}]
    assert second == first


async def test_documents_over_the_token_limit_are_refused_before_validation():
    executor = Executor(schema, max_tokens=50)
    with pytest.raises(OperationFailed) as failure:
        await run(executor, "{ " + "hello " * 100 + "}")
    assert "token" in failure.value.errors[0]["message"]


async def test_documents_with_more_comments_than_the_token_limit_are_refused():
    executor = Executor(schema, max_tokens=50)
    with pytest.raises(OperationFailed) as failure:
        await run(executor, comment_padded(1, lines=100))
    assert "comments" in failure.value.errors[0]["message"]


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


def test_the_package_face_loads_no_channel_layer_until_a_name_needs_it():
    code = (
        "import sys, gqlchannels, gqlchannels.exceptions, gqlchannels.close_codes;"
        "assert callable(gqlchannels.broadcast) and gqlchannels.__version__;"
        "assert 'channels.layers' not in sys.modules, 'the layer was imported';"
        "assert 'gqlchannels.context' not in sys.modules, 'not lazy';"
        "gqlchannels.GraphQLWSContext;"
        "assert 'gqlchannels.context' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_every_public_name_is_importable_from_the_package():
    import gqlchannels

    for name in gqlchannels.__all__:
        assert getattr(gqlchannels, name) is not None


async def test_a_long_subscription_holds_no_memory_per_event():
    executor = Executor(schema)
    request = OperationRequest("subscription { counted(to: 3000) { n } }")
    results = executor.run(request, context=None)
    for _ in range(500):  # warm up: caches, free lists
        await anext(results)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for _ in range(2000):
            await anext(results)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    await aclose(results)
    assert grown < 200_000, f"{grown} bytes held after 2,000 events"


class CountingExecutor(Executor):
    """Counts the parses it does (the cache and the in-flight parses are the real ones)."""

    parses = 0

    def _parse_and_validate(self, query: str) -> Any:
        CountingExecutor.parses += 1
        return super()._parse_and_validate(query)


async def test_concurrent_requests_for_one_new_document_wait_for_one_parse():
    executor = CountingExecutor(schema)
    CountingExecutor.parses = 0

    prepared = await asyncio.gather(*(executor.prepare("{ hello }") for _ in range(20)))

    assert CountingExecutor.parses == 1
    assert all(document is prepared[0] for document in prepared)
