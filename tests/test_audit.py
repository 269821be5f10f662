"""``manage.py gqlchannels_audit``: the report, stale rows, --prune, --json, --probe, and a
bounded number of queries at 10,000 rows."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.management import CommandError, call_command

from gqlchannels import tracking
from gqlchannels.hub import get_hub
from gqlchannels.models import Connection, Subscription
from tests import registry_rows as rows
from tests.helpers import open_connection


def audit(*args: str) -> tuple[str, str]:
    """Run the command; its stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    call_command("gqlchannels_audit", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def audit_json(*args: str) -> dict[str, Any]:
    """Run the command with --json; the document it printed (which must be all of stdout)."""
    out, _ = audit("--json", *args)
    document: dict[str, Any] = json.loads(out)
    return document


@pytest.fixture
def registry() -> dict[str, Any]:
    """Server a (alive, two connections), server b (dead: its one connection is stale)."""
    a1 = rows.connection()
    a2 = rows.connection()
    b1 = rows.connection(stale=True, server_id="host-b:200:bbbbbb", channel_name="hub.b")
    rows.subscription(a1, topics=("room:1",))
    rows.subscription(a2, topics=("room:1", "news"))
    rows.subscription(b1, topics=("room:1",))
    return {"a1": a1, "a2": a2, "b1": b1}


def test_text_report_per_server_and_topic_flags_stale_rows(registry):
    out, _ = audit()
    assert "3 connection(s), 3 subscription(s); 1 connection(s) and 1 subscription(s) stale" in out
    assert "host-a:100:aaaaaa: 2 connection(s) (0 stale), 2 subscription(s) (0 stale)" in out
    assert "host-b:200:bbbbbb: 1 connection(s) (1 stale)" in out and "STALE" in out
    assert "room:1: 3 subscription(s) (1 stale)" in out
    assert "news: 1 subscription(s) (0 stale)" in out
    assert f"Stale connections (1):\n  {registry['b1'].pk} on host-b:200:bbbbbb" in out


def test_json_is_one_document_with_servers_topics_and_stale_rows(registry):
    report = audit_json()
    assert report["totals"] == {
        "connections": 3,
        "stale_connections": 1,
        "subscriptions": 3,
        "stale_subscriptions": 1,
    }
    servers = {server["server_id"]: server for server in report["servers"]}
    assert servers["host-a:100:aaaaaa"]["channels"] == ["gqlchannels.hub.a"]
    assert servers["host-a:100:aaaaaa"]["stale"] is False
    assert servers["host-b:200:bbbbbb"]["stale"] is True
    assert report["topics"][0] == {"topic": "room:1", "subscriptions": 3, "stale_subscriptions": 1}
    assert [row["connection_id"] for row in report["stale_connections"]] == [registry["b1"].pk]


def test_stale_after_can_be_given_on_the_command_line(registry):
    assert audit_json("--stale-after", "999999")["totals"]["stale_connections"] == 0


def test_prune_dry_run_says_what_would_go_and_deletes_nothing(registry):
    report = audit_json("--prune", "--dry-run")
    assert report["pruned"] == {"dry_run": True, "connections": 1, "subscriptions": 1}
    assert Connection.objects.count() == 3 and Subscription.objects.count() == 3


def test_prune_deletes_stale_rows_only(registry):
    out, err = audit("--prune")
    assert "Deleted 1 stale connection(s) and 1 subscription(s)." in out
    assert "Deleted 1 connection(s), 1 subscription(s)." in err  # progress goes to stderr
    assert set(Connection.objects.values_list("pk", flat=True)) == {
        registry["a1"].pk,
        registry["a2"].pk,
    }
    assert Subscription.objects.count() == 2


def test_dry_run_needs_prune():
    with pytest.raises(CommandError, match="--dry-run only goes with --prune"):
        audit("--dry-run")


def test_fail_on_stale_exits_1_when_something_is_stale(registry):
    with pytest.raises(CommandError) as failure:
        audit("--fail-on-stale")
    assert failure.value.returncode == 1
    audit("--prune")
    audit("--fail-on-stale")  # nothing stale any more: no error


def test_empty_registry():
    out, _ = audit()
    assert out.startswith("0 connection(s), 0 subscription(s)")
    assert audit_json()["servers"] == []


async def test_probe_reports_rows_that_no_hub_answered_for():
    communicator = await open_connection()
    tracker = tracking.get_tracker()
    await tracker.flush()
    live = await Connection.objects.aget()
    hub_channel = await get_hub().channel()
    # A row the live hub does not hold, and one of a hub nobody reads any more.
    forgotten = await sync_to_async(rows.connection)(channel_name=hub_channel)
    dead = await sync_to_async(rows.connection)(channel_name="gqlchannels.hub.gone!x")

    out, err = await sync_to_async(audit)("--json", "--probe", "--timeout", "0.5")
    probe = json.loads(out)["probe"]
    assert sorted(probe["unanswered"]) == sorted([forgotten.pk, dead.pk])
    hubs = {hub["channel_name"]: hub for hub in probe["hubs"]}
    assert hubs[hub_channel] == {
        "channel_name": hub_channel,
        "answered": True,
        "rows": 2,
        "held": 1,
        "unanswered": 1,
    }
    assert hubs["gqlchannels.hub.gone!x"]["answered"] is False
    assert live.pk not in probe["unanswered"]
    assert "Probing 2 hub(s)" in err and "1 of 2 hub(s) answered" in err

    text, _ = await sync_to_async(audit)("--probe", "--timeout", "0.5")
    assert "NO ANSWER" in text and "2 connection row(s) nobody answered for" in text
    await communicator.disconnect()


def test_ten_thousand_rows_take_a_bounded_number_of_queries(django_assert_max_num_queries):
    """Every figure comes from aggregate queries: the count does not grow with the rows."""
    connections = [
        rows.connection(
            stale=number % 2 == 0,
            server_id=f"host-{number % 4}:1:tok",
            channel_name=f"hub.{number % 4}",
            save=False,
        )
        for number in range(10_000)
    ]
    Connection.objects.bulk_create(connections, batch_size=500)
    subscriptions = [
        rows.subscription(connection, topics=(f"room:{index % 100}",), save=False)
        for index, connection in enumerate(connections)
    ]
    Subscription.objects.bulk_create(subscriptions, batch_size=500)

    with django_assert_max_num_queries(10):
        report = audit_json("--probe", "--timeout", "0.2", "--prune")
    assert report["totals"]["connections"] == 10_000
    assert report["totals"]["stale_connections"] == 5_000
    assert len(report["stale_connections"]) == 5_000
    assert len(report["topics"]) == 100
    assert len(report["probe"]["unanswered"]) == 10_000
    assert report["pruned"] == {"dry_run": False, "connections": 5_000, "subscriptions": 5_000}
    assert Connection.objects.count() == 5_000 and Subscription.objects.count() == 5_000
