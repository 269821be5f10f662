"""The registry across real processes: two daphne servers on one Redis and one database
(a SQLite file, or PostgreSQL under ``GQLCHANNELS_TEST_DATABASE=postgres``).

Clients connect to both. Server A's admin, over real HTTP with a logged-in superuser,
disconnects a connection that server B holds. Then B is killed with SIGKILL: its rows stay
behind, ``gqlchannels_audit`` (a separate ``manage.py`` process on the same database and
Redis) reports them stale, ``--probe`` finds nobody answering for them, ``--prune`` removes
them, and A's rows, kept fresh by A's heartbeats, stay.

Needs Redis (``REDIS_URL``, by default ``redis://127.0.0.1:6379/0``): without it these tests
are skipped, or fail under ``CI=true``. Each run uses a channels-redis prefix of its own.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests import server_database
from tests.live_server import ORIGIN, PROJECT_ROOT, LiveServer, running_server
from tests.ws_client import RawClient

pytestmark = [pytest.mark.redis, pytest.mark.e2e]

#: Upper bound of every wait, in seconds.
TIMEOUT = 15.0
#: Short tracking timings, so that a killed server's rows go stale within the test; no server
#: pings, which clients that do not read for a while (a1 during the audits) would not answer.
TRACKING_ENV = {
    "GQLCHANNELS_KEEPALIVE_INTERVAL": "3600",
    "GQLCHANNELS_TRACKING": "1",
    "GQLCHANNELS_TRACKING_FLUSH_INTERVAL": "0.2",
    "GQLCHANNELS_HEARTBEAT_INTERVAL": "0.5",
    "GQLCHANNELS_STALE_AFTER": "3",
}
ADMIN_PASSWORD = "live-admin-" + uuid.uuid4().hex[:8]


def redis_url() -> str:
    """The Redis these tests share, once it answers; skip (fail under ``CI=true``) if not."""
    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as error:
        message = f"Redis does not answer at {url} ({error})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI=true: the Redis tests must run", pytrace=False)
        pytest.skip(f"{message}; start redis-server or set REDIS_URL to run these tests")
    finally:
        client.close()
    return url


@pytest.fixture(scope="module", params=[("daphne", "uvicorn"), ("uvicorn", "daphne")], ids="-".join)
def servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Servers A and B: one Redis (under a prefix of their own), one SQLite file; daphne and
    uvicorn, each in both roles (the tests run twice)."""
    env = {
        "REDIS_URL": redis_url(),
        "GQLCHANNELS_REDIS_PREFIX": f"gqlctrack{uuid.uuid4().hex[:12]}",
        **TRACKING_ENV,
    }
    root = tmp_path_factory.mktemp("tracking-live")
    database = root / "shared.sqlite3"
    with (
        running_server(root / "a", request.param[0], env=env, database=database) as a,
        running_server(root / "b", request.param[1], env=env, database=database) as b,
    ):
        yield a, b


# -- observing the shared database ---------------------------------------------------------


def registry_rows(server: LiveServer) -> dict[str, dict[str, Any]]:
    """The registry's connection rows (by id), each with its subscriptions' topics."""
    with server_database.connect(server.env) as db:
        connections = db.execute(
            "SELECT connection_id, server_id, channel_name FROM gqlchannels_connection"
        ).fetchall()
        operations = db.execute(
            "SELECT connection_id, topics FROM gqlchannels_subscription"
        ).fetchall()
    rows = {cid: {"server_id": sid, "channel": ch, "topics": []} for cid, sid, ch in connections}
    for connection_id, topics in operations:
        if connection_id in rows:
            rows[connection_id]["topics"].append(topics)
    return rows


async def rows_where(server: LiveServer, condition: Any) -> dict[str, dict[str, Any]]:
    """Poll the shared database (bounded) until ``condition(rows)`` holds; the rows."""
    rows: dict[str, dict[str, Any]] = {}
    for _ in range(int(TIMEOUT / 0.1)):
        rows = await asyncio.to_thread(registry_rows, server)
        if condition(rows):
            return rows
        await asyncio.sleep(0.1)
    raise AssertionError(f"The registry never reached the expected state: {rows}")


def all_listening(rows: dict[str, dict[str, Any]]) -> bool:
    """Whether every connection's one subscription row has its room's topic."""
    return all(row["topics"] in (["room:live-a"], ["room:live-b"]) for row in rows.values())


def of_server(rows: dict[str, dict[str, Any]], server: LiveServer) -> set[str]:
    """Ids of the rows written by ``server`` (its pid is in the server id)."""
    return {
        cid
        for cid, row in rows.items()
        if row["server_id"].split(":")[-2] == str(server.process.pid)
    }


# -- clients ---------------------------------------------------------------------------------


class Client(RawClient):
    """A graphql-transport-ws client with one ``messageAdded`` subscription."""

    @classmethod
    async def open(cls, server: LiveServer, room: str) -> Client:
        """Connect, get acknowledged, subscribe to ``room``."""
        client = await cls.connect(server.ws_url, "graphql-transport-ws", {"Origin": ORIGIN})
        assert isinstance(client, Client)
        await client.send({"type": "connection_init", "payload": {}})
        assert (await client.frame())["type"] == "connection_ack"
        query = f'subscription {{ messageAdded(room: "{room}") {{ text }} }}'
        await client.send({"type": "subscribe", "id": "chat", "payload": {"query": query}})
        return client

    async def still_served(self) -> None:
        """Our ping gets the server's pong."""
        await self.send({"type": "ping"})
        assert (await self.frame())["type"] == "pong"


# -- the admin, over HTTP --------------------------------------------------------------------


class AdminSession:
    """A logged-in browser session on a server's Django admin (cookies and CSRF included)."""

    def __init__(self, server: LiveServer):
        self.base = server.http_url
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def get(self, path: str) -> str:
        """GET ``path``; the page."""
        with self.opener.open(self.base + path, timeout=TIMEOUT) as response:
            page: str = response.read().decode()
            return page

    def post(self, path: str, form: list[tuple[str, str]]) -> str:
        """POST ``form`` to ``path`` with the CSRF token of the page at ``path``; the page
        the redirect leads to."""
        token = _csrf_token(self.get(path))
        data = urllib.parse.urlencode([("csrfmiddlewaretoken", token), *form]).encode()
        request = urllib.request.Request(
            self.base + path, data=data, headers={"Referer": self.base + path}
        )
        with self.opener.open(request, timeout=TIMEOUT) as response:
            page: str = response.read().decode()
            return page

    def login(self, username: str, password: str) -> None:
        """Log in through the admin's login form."""
        page = self.post(
            "/admin/login/?next=/admin/",
            [("username", username), ("password", password), ("next", "/admin/")],
        )
        assert "Log out" in page or "logout" in page, page[:2000]


def _csrf_token(page: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert match, page[:2000]
    return match.group(1)


def create_superuser(server: LiveServer, username: str) -> None:
    """A superuser in the shared database, through ``manage.py createsuperuser``."""
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "createsuperuser",
            "--noinput",
            "--username",
            username,
            "--email",
            f"{username}@example.com",
        ],
        cwd=PROJECT_ROOT,
        env={**server.env, "DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD},
        capture_output=True,
        timeout=TIMEOUT * 4,
        check=True,
    )


# -- the audit, as another process ------------------------------------------------------------


def audit(server: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    """``manage.py gqlchannels_audit *args`` on the servers' database and Redis."""
    return subprocess.run(
        [sys.executable, "manage.py", "gqlchannels_audit", *args],
        cwd=PROJECT_ROOT,
        env=server.env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 4,
        check=False,
    )


def audit_json(server: LiveServer, *args: str) -> dict[str, Any]:
    """The audit's JSON report (the command must succeed)."""
    result = audit(server, "--json", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


# -- the test ----------------------------------------------------------------------------------


async def test_admin_disconnects_across_processes_and_audit_prunes_a_killed_server(
    servers: tuple[LiveServer, LiveServer],
) -> None:
    a, b = servers
    clients = {
        "a1": await Client.open(a, "live-a"),
        "b1": await Client.open(b, "live-b"),
        "b2": await Client.open(b, "live-b"),
    }
    try:
        rows = await rows_where(a, lambda rows: len(rows) == 3 and all_listening(rows))
        [a1] = of_server(rows, a)
        b_ids = of_server(rows, b)
        assert len(b_ids) == 2
        assert rows[a1]["channel"] != rows[next(iter(b_ids))]["channel"]

        # The audit sees everyone alive and every hub answering.
        report = await asyncio.to_thread(audit_json, a, "--probe", "--timeout", "5")
        assert report["totals"]["connections"] == 3
        assert report["totals"]["stale_connections"] == 0
        assert report["probe"]["unanswered"] == []

        # Server A's admin disconnects one of B's connections: over HTTP, as staff would.
        create_superuser(a, "ops")
        session = AdminSession(a)
        await asyncio.to_thread(session.login, "ops", ADMIN_PASSWORD)
        target = latest_connection(b, b_ids)  # b2's: it connected after b1
        page = await asyncio.to_thread(
            session.post,
            "/admin/gqlchannels/connection/",
            [("action", "disconnect_selected"), ("index", "0"), ("_selected_action", target)],
        )
        assert "Asked 1 connection(s) in 1 process(es) to close (code 4000)" in page
        assert await asyncio.wait_for(clients["b2"].close_code(), TIMEOUT) == 4000
        await rows_where(a, lambda rows: target not in rows and len(rows) == 2)
        await clients["b1"].still_served()

        # B dies without a word: its rows stay behind...
        b.kill()
        assert await asyncio.wait_for(clients["b1"].close_code(), TIMEOUT) in (None, 1006)
        [b1] = b_ids - {target}
        assert b1 in await asyncio.to_thread(registry_rows, a)

        # ...until the audit finds them stale and unanswered, and prunes them.
        report = await _audit_until_stale(a, b1)
        assert [row["connection_id"] for row in report["stale_connections"]] == [b1]
        hubs = {hub["channel_name"]: hub for hub in report["probe"]["hubs"]}
        assert hubs[rows[b1]["channel"]]["answered"] is False
        assert hubs[rows[a1]["channel"]]["answered"] is True
        assert report["probe"]["unanswered"] == [b1]

        failing = await asyncio.to_thread(audit, a, "--fail-on-stale")
        assert failing.returncode == 1, failing.stdout + failing.stderr
        dry = await asyncio.to_thread(audit_json, a, "--prune", "--dry-run")
        assert dry["pruned"] == {"dry_run": True, "connections": 1, "subscriptions": 1}
        assert set(await asyncio.to_thread(registry_rows, a)) == {a1, b1}

        pruned = await asyncio.to_thread(audit_json, a, "--prune")
        assert pruned["pruned"] == {"dry_run": False, "connections": 1, "subscriptions": 1}
        remaining = await asyncio.to_thread(registry_rows, a)
        assert set(remaining) == {a1} and remaining[a1]["topics"] == ["room:live-a"]

        # A's connection never noticed, and A's heartbeats keep its row fresh.
        await clients["a1"].still_served()
        report = await asyncio.to_thread(audit_json, a, "--fail-on-stale", "--probe")
        assert report["totals"] == {
            "connections": 1,
            "stale_connections": 0,
            "subscriptions": 1,
            "stale_subscriptions": 0,
        }
        assert report["probe"]["unanswered"] == []
    finally:
        for client in clients.values():
            await client.close()


def latest_connection(server: LiveServer, candidates: set[str]) -> str:
    """The one of ``candidates`` that connected last (``connected_at`` is the server's)."""
    with server_database.connect(server.env) as db:
        placeholders = ",".join(["%s"] * len(candidates))
        rows: list[tuple[str]] = db.execute(
            f"SELECT connection_id FROM gqlchannels_connection WHERE connection_id IN "
            f"({placeholders}) ORDER BY connected_at DESC LIMIT 1",
            sorted(candidates),
        ).fetchall()
        [(connection_id,)] = rows
    return connection_id


async def _audit_until_stale(server: LiveServer, connection_id: str) -> dict[str, Any]:
    """Run the audit (with --probe) until it reports ``connection_id`` stale (bounded)."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while True:
        report = await asyncio.to_thread(audit_json, server, "--probe", "--timeout", "2")
        stale = [row["connection_id"] for row in report["stale_connections"]]
        if connection_id in stale or asyncio.get_running_loop().time() > deadline:
            return report
        await asyncio.sleep(0.5)
