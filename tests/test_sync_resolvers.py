"""Plain sync resolvers run in Django's database thread in few hops, not one per field
(``gqlchannels.resolvers``): a query of sync fields in one, sync fields reached on the loop
in one batch per level."""

from __future__ import annotations

from typing import Any

from gqlchannels.execution import Executor, OperationRequest
from tests.narrowing import plain_results
from tests.schema import Hops, schema


async def results(query: str, **options: Any) -> list[dict[str, Any]]:
    """Every result of ``query`` on the test schema."""
    executor = Executor(schema, validation_rules=(), **options)  # 200 aliases: no limits
    return await plain_results(executor.run(OperationRequest(query), context=None))


async def test_a_query_of_sync_fields_runs_in_one_database_thread_hop(fresh_hops: Hops):
    fields = " ".join(f"f{number}: hop" for number in range(200))

    [result] = await results(f"{{ {fields} }}")

    assert result["data"] == {f"f{number}": "hopped" for number in range(200)}
    assert fresh_hops.count == 1


async def test_nested_sync_fields_of_a_sync_root_share_its_one_hop(fresh_hops: Hops):
    query = "{ a: syncObject { hop child { hop } } b: syncObject { hop child { hop } } }"

    [result] = await results(query)

    assert result["data"]["b"] == {"hop": "hopped", "child": {"hop": "hopped"}}
    assert fresh_hops.count == 1


async def test_sync_fields_below_an_async_field_run_in_one_batch_per_level(fresh_hops: Hops):
    query = "{ asyncObject { a: hop b: hop child { c: hop d: hop } } }"

    [result] = await results(query)

    assert result["data"]["asyncObject"]["child"] == {"c": "hopped", "d": "hopped"}
    assert fresh_hops.count == 2  # a, b (and child) together, then c and d


async def test_a_failing_sync_resolver_fails_only_its_own_field_in_the_batch(fresh_hops: Hops):
    [result] = await results("{ asyncObject { before: hop fails after: hop } }")

    assert result["data"] == {"asyncObject": {"before": "hopped", "fails": None, "after": "hopped"}}
    assert [error["path"] for error in result["errors"]] == [["asyncObject", "fails"]]


async def test_typename_below_an_async_field_runs_on_the_loop(fresh_hops: Hops):
    # graphql-core's own meta field is in no type's fields: it used to fail with KeyError.
    [result] = await results("{ asyncObject { __typename hop } }")

    assert result == {"data": {"asyncObject": {"__typename": "SyncObject", "hop": "hopped"}}}
    assert fresh_hops.count == 1
