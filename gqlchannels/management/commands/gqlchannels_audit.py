"""``manage.py gqlchannels_audit``: what the live registry holds, and what in it is dead.

A row whose process stopped sending heartbeats for ``STALE_AFTER`` seconds is *stale*: the
process was killed, crashed or lost its host, and nothing else will ever delete the row.
``--probe`` asks every process (through its hub channel) which connections it really holds,
which also finds rows of a live process that lost track of them. ``--prune`` deletes stale
rows. Every figure comes from a handful of aggregate queries, however many rows there are.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count, Max, Q
from django.utils import timezone

from ... import conf, control
from ...models import Connection, Subscription, split_topics, stale_cutoff

#: Stale connections listed in the text report (``--json`` lists them all).
TEXT_LIST_LIMIT = 20


class Command(BaseCommand):
    """Report the registry per server and per topic; probe, prune, fail on stale rows."""

    help = (
        "List live connections and subscriptions per server and per topic, flag stale rows "
        "(no heartbeat for STALE_AFTER), and optionally probe every hub (--probe) and delete "
        "stale rows (--prune)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """The command's options."""
        parser.add_argument(
            "--probe",
            action="store_true",
            help="Ask every hub which connections it holds; report rows nobody answered for.",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=5.0,
            help="Seconds hubs have to answer --probe (default 5).",
        )
        parser.add_argument(
            "--prune", action="store_true", help="Delete stale connections and their operations."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="With --prune: only say what would go."
        )
        parser.add_argument(
            "--stale-after",
            type=float,
            default=None,
            help="Seconds without heartbeat that make a row stale (default: STALE_AFTER).",
        )
        parser.add_argument(
            "--json", action="store_true", help="Print one JSON document on stdout."
        )
        parser.add_argument(
            "--fail-on-stale",
            action="store_true",
            help="Exit with status 1 when any stale row was found (before pruning).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Gather the report, probe and prune as asked, print, and set the exit status."""
        if options["dry_run"] and not options["prune"]:
            raise CommandError("--dry-run only goes with --prune")
        if options["timeout"] <= 0:
            raise CommandError("--timeout must be more than 0")
        stale_after = options["stale_after"]
        if stale_after is None:
            stale_after = conf.get("STALE_AFTER")
        now = timezone.now()
        cutoff = stale_cutoff(now, stale_after)
        report = gather(now, cutoff, stale_after)
        if options["probe"]:
            report["probe"] = self.probe(report, options["timeout"])
        if options["prune"]:
            report["pruned"] = self.prune(cutoff, report, options["dry_run"])
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2, default=_json_default))
        else:
            self.stdout.write(render_text(report, now))
        if options["fail_on_stale"] and report["totals"]["stale_connections"]:
            raise CommandError(
                f"{report['totals']['stale_connections']} stale connection(s)", returncode=1
            )

    def probe(self, report: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Ask each hub that holds rows which connections it has; compare with the rows."""
        channels = sorted({hub for server in report["servers"] for hub in server["channels"]})
        self.stderr.write(f"Probing {len(channels)} hub(s), {timeout}s to answer...")
        answers = control.probe_sync(channels, timeout=timeout) if channels else {}
        self.stderr.write(f"{len(answers)} of {len(channels)} hub(s) answered.")
        return compare_with_answers(channels, answers, timeout)

    def prune(self, cutoff: datetime, report: dict[str, Any], dry_run: bool) -> dict[str, Any]:
        """Delete the stale rows (or, on a dry run, say how many would go)."""
        totals = report["totals"]
        if dry_run:
            self.stderr.write("Dry run: nothing is deleted.")
            return {
                "dry_run": True,
                "connections": totals["stale_connections"],
                "subscriptions": totals["stale_subscriptions"],
            }
        connections, subscriptions = Connection.objects.stale(cutoff).purge()
        self.stderr.write(f"Deleted {connections} connection(s), {subscriptions} subscription(s).")
        return {"dry_run": False, "connections": connections, "subscriptions": subscriptions}


# -- the report -----------------------------------------------------------------------------


def gather(now: datetime, cutoff: datetime, stale_after: float) -> dict[str, Any]:
    """The registry per server and per topic, and its stale connections (four queries)."""
    stale = Connection.objects.stale_condition(cutoff)
    stale_operation = Subscription.objects.stale_condition(cutoff)
    servers: dict[str, dict[str, Any]] = {}
    by_server = Connection.objects.values("server_id", "channel_name").annotate(
        connections=Count("pk"), stale=Count("pk", filter=stale), last_seen=Max("last_seen")
    )
    for row in by_server.order_by("server_id", "channel_name"):
        server = servers.setdefault(
            row["server_id"],
            {
                "server_id": row["server_id"],
                "channels": [],
                "connections": 0,
                "stale_connections": 0,
                "subscriptions": 0,
                "stale_subscriptions": 0,
                "last_seen": row["last_seen"],
            },
        )
        if row["channel_name"]:
            server["channels"].append(row["channel_name"])
        server["connections"] += row["connections"]
        server["stale_connections"] += row["stale"]
        server["last_seen"] = max(server["last_seen"], row["last_seen"])
    operations = Subscription.objects.values("connection__server_id").annotate(
        subscriptions=Count("pk"), stale=Count("pk", filter=stale_operation)
    )
    for counts in operations.order_by():
        found = servers.get(counts["connection__server_id"])
        if found is not None:
            found["subscriptions"] += counts["subscriptions"]
            found["stale_subscriptions"] += counts["stale"]
    for server in servers.values():
        server["stale"] = server["stale_connections"] == server["connections"]
    return {
        "generated_at": now,
        "stale_after": stale_after,
        "totals": {
            "connections": sum(s["connections"] for s in servers.values()),
            "stale_connections": sum(s["stale_connections"] for s in servers.values()),
            "subscriptions": sum(s["subscriptions"] for s in servers.values()),
            "stale_subscriptions": sum(s["stale_subscriptions"] for s in servers.values()),
        },
        "servers": list(servers.values()),
        "topics": topics(stale_operation),
        "stale_connections": stale_connections(cutoff),
    }


def topics(stale: Q) -> list[dict[str, Any]]:
    """Subscriptions per topic, from one query grouped by each distinct set of topics."""
    counts: dict[str, dict[str, Any]] = {}
    grouped = Subscription.objects.values("topics").annotate(
        subscriptions=Count("pk"), stale=Count("pk", filter=stale)
    )
    for row in grouped.order_by():
        for topic in split_topics(row["topics"]):
            entry = counts.setdefault(
                topic, {"topic": topic, "subscriptions": 0, "stale_subscriptions": 0}
            )
            entry["subscriptions"] += row["subscriptions"]
            entry["stale_subscriptions"] += row["stale"]
    return sorted(counts.values(), key=lambda entry: (-entry["subscriptions"], entry["topic"]))


def stale_connections(cutoff: datetime) -> list[dict[str, Any]]:
    """Every connection stale at ``cutoff``, oldest heartbeat first (one query)."""
    rows = (
        Connection.objects.stale(cutoff)
        .annotate(subscription_count=Count("subscriptions"))
        .order_by("last_seen", "connection_id")
        .values(
            "connection_id",
            "server_id",
            "channel_name",
            "user_id",
            "protocol",
            "connected_at",
            "last_seen",
            "subscription_count",
        )
    )
    return [
        {
            **{k: v for k, v in row.items() if k != "subscription_count"},
            "subscriptions": row["subscription_count"],
        }
        for row in rows
    ]


def compare_with_answers(
    channels: list[str], answers: dict[str, list[str]], timeout: float
) -> dict[str, Any]:
    """Rows nobody answered for: their hub was silent, or answered without them (one query)."""
    rows: dict[str, list[str]] = defaultdict(list)
    for connection_id, channel in Connection.objects.filter(channel_name__in=channels).values_list(
        "connection_id", "channel_name"
    ):
        rows[channel].append(connection_id)
    hubs = []
    unanswered: list[str] = []
    for channel in channels:
        held = set(answers.get(channel, ()))
        missing = sorted(cid for cid in rows[channel] if cid not in held)
        unanswered.extend(missing)
        hubs.append(
            {
                "channel_name": channel,
                "answered": channel in answers,
                "rows": len(rows[channel]),
                "held": len(held),
                "unanswered": len(missing),
            }
        )
    unprobed = Connection.objects.filter(channel_name="").count()
    return {
        "timeout": timeout,
        "hubs": hubs,
        "unanswered": unanswered,
        "unprobed_connections": unprobed,
    }


def render_text(report: dict[str, Any], now: datetime) -> str:
    """The report for people."""
    totals = report["totals"]
    lines = [
        f"{totals['connections']} connection(s), {totals['subscriptions']} subscription(s); "
        f"{totals['stale_connections']} connection(s) and {totals['stale_subscriptions']} "
        f"subscription(s) stale (no heartbeat for {report['stale_after']:g}s).",
        "",
        "Servers:",
    ]
    for server in report["servers"]:
        flag = "  STALE" if server["stale"] else ""
        lines.append(
            f"  {server['server_id']}: {server['connections']} connection(s) "
            f"({server['stale_connections']} stale), {server['subscriptions']} subscription(s) "
            f"({server['stale_subscriptions']} stale), last heartbeat "
            f"{_ago(now, server['last_seen'])}{flag}"
        )
    if not report["servers"]:
        lines.append("  (none)")
    lines += ["", "Topics:"]
    lines += [
        f"  {t['topic']}: {t['subscriptions']} subscription(s) ({t['stale_subscriptions']} stale)"
        for t in report["topics"]
    ] or ["  (none)"]
    stale = report["stale_connections"]
    if stale:
        lines += ["", f"Stale connections ({len(stale)}):"]
        for row in stale[:TEXT_LIST_LIMIT]:
            lines.append(
                f"  {row['connection_id']} on {row['server_id']}, last heartbeat "
                f"{_ago(now, row['last_seen'])}, {row['subscriptions']} subscription(s)"
            )
        if len(stale) > TEXT_LIST_LIMIT:
            lines.append(f"  ... and {len(stale) - TEXT_LIST_LIMIT} more (--json lists all)")
    if "probe" in report:
        lines += ["", *_probe_lines(report["probe"])]
    if "pruned" in report:
        pruned = report["pruned"]
        verb = "Would delete" if pruned["dry_run"] else "Deleted"
        lines += [
            "",
            f"{verb} {pruned['connections']} stale connection(s) and "
            f"{pruned['subscriptions']} subscription(s).",
        ]
    return "\n".join(lines)


def _probe_lines(probe: dict[str, Any]) -> list[str]:
    answered = sum(hub["answered"] for hub in probe["hubs"])
    lines = [f"Probe ({probe['timeout']:g}s): {answered} of {len(probe['hubs'])} hub(s) answered."]
    for hub in probe["hubs"]:
        state = "answered" if hub["answered"] else "NO ANSWER"
        lines.append(
            f"  {hub['channel_name']}: {state}, {hub['rows']} row(s), {hub['unanswered']} not held"
        )
    lines.append(f"  {len(probe['unanswered'])} connection row(s) nobody answered for.")
    if probe["unprobed_connections"]:
        lines.append(f"  {probe['unprobed_connections']} row(s) have no hub channel to probe.")
    return lines


def _ago(now: datetime, then: datetime) -> str:
    seconds = max(0.0, (now - then).total_seconds())
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
