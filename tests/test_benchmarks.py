"""The benchmark code keeps working: a tiny run of every scenario against gqlchannels, and
a tiny hostile run (two attacks).

A real daphne, the in-memory channel layer, a handful of clients and events, over each
subprotocol, with only the project's own requirements (no Strawberry, no psutil). It checks
what must hold at any speed (every event delivered once and in order, every subscription's
``finally`` run after abrupt disconnects) and asserts nothing about time.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from benchmarks.attacks import TINY_SIZES
from benchmarks.client import PROTOCOLS, Stream
from benchmarks.compare import SCENARIOS, TINY, compare, render, render_targets
from benchmarks.hostile import TINY as HOSTILE_TINY
from benchmarks.hostile import hostile
from benchmarks.hostile import render as render_hostile
from benchmarks.scale import TINY as SCALE_TINY
from benchmarks.scale import render as render_scale
from benchmarks.scale import scale

pytestmark = pytest.mark.e2e


def test_stream_accounts_for_loss_duplicates_and_reordering() -> None:
    """The checker the benchmark relies on does see each kind of defect."""
    completed: list[bool] = []
    stream = Stream(4, lambda: completed.append(True))
    for seq in (-1, 0, 2, 1, 2, 7):
        stream.record(seq, sent_at=1.0, received_at=1.5)
    assert stream.primed
    assert (stream.count, stream.duplicates, stream.reordered, stream.unexpected) == (3, 1, 1, 1)
    assert not stream.complete and not completed
    stream.record(3, sent_at=1.0, received_at=1.5)
    assert stream.complete and completed == [True]
    assert stream.latencies == [0.5] * 4


def test_every_server_kind_can_be_published_to_from_another_process() -> None:
    from benchmarks.servers import SERVERS
    from benchmarks.servers.publish import PUBLISHERS

    assert set(PUBLISHERS) == set(SERVERS)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_tiny_benchmark_of_gqlchannels_delivers_every_event_once_in_order(
    protocol: str, tmp_path: Path
) -> None:
    results = asyncio.run(
        compare(
            TINY,
            ["gqlchannels"],
            ["memory"],
            protocol,
            say=lambda line: None,
            directory=tmp_path,
        )
    )

    [run] = results["runs"]
    for name in SCENARIOS:
        assert "failed" not in run[name], (name, run[name], run.get("server_log_tail"))
    rate_events = round(TINY.rate * TINY.rate_seconds)
    for name, subscribers, events in (
        ("fanout_max", TINY.fan_subscribers, TINY.fan_events),
        ("fanout_rate", TINY.rate_subscribers, rate_events),
    ):
        fan_out = run[name]
        assert fan_out["expected"] == subscribers * events
        assert fan_out["received"] == fan_out["expected"], fan_out
        defects = ("lost", "late", "duplicates", "reordered", "unexpected", "errors")
        assert {name: fan_out[name] for name in defects} == dict.fromkeys(defects, 0), fan_out
        assert fan_out["live_after_close"] == 0
    assert run["storm"]["ack_ms"]["p99"] is not None
    churn = run["churn"]
    assert [row["live_before"] for row in churn["rows"]] == [TINY.churn_clients] * TINY.churn_rounds
    assert churn["live_after_total"] == 0
    assert run["idle"]["live_after_close"] == 0

    table = render(results["summary"], ["gqlchannels"], TINY.passes)
    assert "fan-out max: deliveries/s" in table and "failed" not in table
    assert "churn" in render_targets(results["targets"])


def test_a_tiny_hostile_run_measures_each_attack_and_closes_the_stalled_reader(
    tmp_path: Path,
) -> None:
    results = asyncio.run(hostile(HOSTILE_TINY, say=lambda line: None, directory=tmp_path))

    rows = {row["attack"]: row for row in results["rows"]}
    assert list(rows) == list(HOSTILE_TINY.attacks)
    for row in rows.values():
        assert "failed" not in row, (row, results["server_log_tail"])
        assert row["witness_alive"] and row["new_connections"] == "ok", row
        assert row["subscriptions_left"] == 0, row
        assert row["witness_ms"]["events"] > 0
        assert row["rss_peak"] >= row["rss_before"] > 0
    # It reads nothing while ~16 MB are published to it: the outbound budget must end it.
    assert rows["stalled_legacy"]["attacker"].startswith(("dropped", "closed")), rows
    assert "not reading" in " ".join(rows["stalled_legacy"]["server_log"])
    malformed = rows["malformed"]
    assert malformed["connections"] == TINY_SIZES.malformed_connections
    assert re.fullmatch(r"(\d+ closed 440[01](, )?)+", malformed["attacker"]), malformed
    table = render_hostile(results)
    assert all(name in table for name in HOSTILE_TINY.attacks)


def test_a_tiny_scale_run_measures_idle_cost_fan_out_and_the_witness(tmp_path: Path) -> None:
    results = asyncio.run(scale(SCALE_TINY, say=lambda line: None, directory=tmp_path))

    assert results["idle"]["live_after_close"] == 0
    assert results["idle"]["rss_connections"] > 0
    for name, subscribers in (
        ("fanout_baseline", SCALE_TINY.baseline),
        ("fanout_full", SCALE_TINY.connections),
    ):
        fan_out = results[name]
        assert fan_out["expected"] == subscribers * SCALE_TINY.events
        assert fan_out["received"] == fan_out["expected"], fan_out
        defects = ("lost", "late", "duplicates", "reordered", "unexpected", "errors")
        assert {key: fan_out[key] for key in defects} == dict.fromkeys(defects, 0), fan_out
    witness = results["witness"]
    assert witness["latency_ms"]["missed"] == 0 and witness["latency_ms"]["events"] > 0, witness
    assert "witness with" in render_scale(results)
