"""Redis for the tests that need a real one: the shared server, and private throwaway ones.

``require_redis()`` returns the URL of the Redis the suite shares (``REDIS_URL``, by default
``redis://127.0.0.1:6379/0``) once it answers a PING; when it does not, the test is skipped
with a note on how to run it, or fails under ``CI=true``, where skipping would hide that
nothing was tested. ``unique_prefix()`` names a channels-redis key prefix of its own for each
server a test starts, so tests sharing that Redis never see each other's groups or messages.

``RedisServer`` runs a private ``redis-server`` on a free port of 127.0.0.1, without
persistence, for tests that stop and restart Redis under a live daphne: ``restart()`` brings
it back on the same port with its data gone, as a crash or a failover would. Only the process
it started is ever signalled (by its PID), and leaving the ``with`` block always stops it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import NoReturn

import pytest
import redis

from tests.live_server import HOST, PROJECT_ROOT, free_port

DEFAULT_REDIS_URL = f"redis://{HOST}:6379/0"
#: Seconds a Redis has to answer a PING when checked.
PING_TIMEOUT = 1.0
#: Seconds a private redis-server gets to answer after it was started.
START_TIMEOUT = 10.0
#: Seconds a private redis-server gets to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 10.0
#: Fresh ports tried when the one picked was taken between picking and binding.
PORT_ATTEMPTS = 3

HOW_TO_RUN = (
    "start redis-server on 127.0.0.1:6379 (e.g. `redis-server --save '' --appendonly no`) "
    "or set REDIS_URL to a Redis that answers"
)


def on_ci() -> bool:
    """Whether this run is CI's, where a missing Redis fails instead of skipping."""
    return os.environ.get("CI") == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip the test (fail it under ``CI=true``) because Redis is not there."""
    if on_ci():
        pytest.fail(
            f"{reason}. CI=true: the Redis tests must run here; {HOW_TO_RUN}.", pytrace=False
        )
    pytest.skip(f"{reason}; to run the Redis tests, {HOW_TO_RUN}")


def redis_url() -> str:
    """The shared Redis the suite is told to use."""
    return os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL


def ping(url: str, timeout: float = PING_TIMEOUT) -> str | None:
    """None if the Redis at ``url`` answers a PING within ``timeout``, else why not.

    One attempt, no retries: a Redis that is down must not cost redis-py's retry backoff.
    """
    client = redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=None
    )
    try:
        client.ping()
    except redis.RedisError as error:
        return f"{type(error).__name__}: {error}"
    finally:
        client.close()
    return None


def require_redis() -> str:
    """The shared Redis' URL, once it answers; skip (or, on CI, fail) the test otherwise."""
    url = redis_url()
    problem = ping(url)
    if problem is not None:
        unavailable(f"Redis does not answer at {url} ({problem})")
    return url


def unique_prefix() -> str:
    """A channels-redis key prefix no other server or test uses."""
    return f"gqlctest{uuid.uuid4().hex[:12]}"


def layer_environment(url: str, prefix: str | None = None, **settings: object) -> dict[str, str]:
    """The demo's environment for channels-redis at ``url`` under ``prefix`` (a fresh one by
    default), plus ``GQLCHANNELS_<NAME>`` for each setting given, e.g. ``GROUP_EXPIRY=3``
    (the layer's) or ``SEND_WINDOW=100`` (gqlchannels')."""
    env = {"REDIS_URL": url, "GQLCHANNELS_REDIS_PREFIX": prefix or unique_prefix()}
    env.update({f"GQLCHANNELS_{name}": str(value) for name, value in settings.items()})
    return env


def redis_server_binary() -> str:
    """The ``redis-server`` executable; skip (or, on CI, fail) the test when there is none."""
    binary = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None
    )
    if binary is None:
        unavailable("redis-server is not installed (the tests that stop Redis run their own)")
    return binary


class RedisFailed(RuntimeError):
    """A private redis-server did not come up; the message carries its log."""


class RedisServer:
    """A private ``redis-server`` on 127.0.0.1, without persistence.

    ``start()`` picks a free port the first time and reuses it afterwards, so clients
    configured with ``url`` reach the restarted server. Use it as a context manager: the
    server is stopped on exit whatever happened.
    """

    def __init__(self, directory: Path, binary: str | None = None):
        self.directory = directory
        self.binary = binary or redis_server_binary()
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        """Where clients reach it (database 0)."""
        assert self.port is not None, "start() the server first"
        return f"redis://{HOST}:{self.port}/0"

    @property
    def log_path(self) -> Path:
        """The log of the latest start."""
        return self.directory / f"redis-{self.starts}.log"

    def log(self) -> str:
        """What the latest start of the server wrote."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> None:
        """Start the server (on its port, if it had one) and return once it answers."""
        assert self.process is None, "already running"
        self.directory.mkdir(parents=True, exist_ok=True)
        attempts = PORT_ATTEMPTS if self.port is None else 1
        for attempt in range(1, attempts + 1):
            port = self.port or free_port()
            try:
                self._launch(port)
                self._wait_until_answering(port)
            except RedisFailed as failure:
                self.stop()
                if "Address already in use" in str(failure) and attempt < attempts:
                    continue
                raise
            self.port = port
            return

    def _launch(self, port: int) -> None:
        self.starts += 1
        command = [
            self.binary,
            "--bind", HOST,
            "--port", str(port),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", str(self.directory),
        ]  # fmt: skip
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )

    def _wait_until_answering(self, port: int) -> None:
        assert self.process is not None
        url = f"redis://{HOST}:{port}/0"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RedisFailed(
                    f"redis-server exited with {self.process.returncode}:\n{self.log()}"
                )
            if ping(url, timeout=0.5) is None:
                return
            time.sleep(0.02)
        raise RedisFailed(f"redis-server did not answer within {START_TIMEOUT}s:\n{self.log()}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, SIGKILL after ``STOP_TIMEOUT``); idempotent. Its data is
        gone: nothing is saved."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)

    def restart(self, downtime: float = 0.0) -> None:
        """Stop the server and, ``downtime`` seconds later (a failover takes a while), start
        an empty one on the same port."""
        self.stop()
        time.sleep(downtime)
        self.start()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def delete_prefix(url: str, prefix: str) -> int:
    """Delete every key channels-redis wrote under ``prefix`` at ``url``; how many there were.

    Best effort (the Redis may be gone): run after the servers that used the prefix stopped.
    """
    client = redis.Redis.from_url(
        url, socket_timeout=PING_TIMEOUT, socket_connect_timeout=PING_TIMEOUT, retry=None
    )
    deleted = 0
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += client.delete(*batch)
                batch = []
        if batch:
            deleted += client.delete(*batch)
    except redis.RedisError:
        pass
    finally:
        client.close()
    return deleted


# -- the demo's side: events, publishers in other processes, probes ----------------------------

#: Seconds a plain publishing process (Django start-up included) may take.
PUBLISHER_TIMEOUT = 60.0
#: The exit status of ``PUBLISHER`` when ``broadcast_sync`` raised BroadcastError.
PUBLISH_FAILED = 3

#: A plain Python process (no server, no event loop of its own) publishing with
#: ``broadcast_sync``: argv[1] is the topic, stdin a JSON list of payloads.
PUBLISHER = f"""
import json, sys
import django
django.setup()
from gqlchannels import BroadcastError, broadcast_sync
topic = sys.argv[1]
try:
    for payload in json.load(sys.stdin):
        broadcast_sync(topic, payload)
except BroadcastError as error:
    print(f"BroadcastError: {{error}}", file=sys.stderr)
    sys.exit({PUBLISH_FAILED})
"""


def room_topic(room: str) -> str:
    """The topic the demo's ``postMessage`` publishes to and ``messageAdded`` listens to."""
    return f"room:{room}"


def message_event(room: str, text: str, number: int = 0) -> dict[str, object]:
    """An event as ``postMessage`` publishes it (``messageAdded`` resolves its fields)."""
    return {
        "id": str(number),
        "room": room,
        "author": None,
        "text": text,
        "createdAt": "2026-01-01T00:00:00+00:00",
    }


def publish_from_plain_process(
    env: dict[str, str], room: str, texts: list[str]
) -> subprocess.CompletedProcess[str]:
    """Run ``PUBLISHER`` in ``env`` (the demo's settings and Redis) to publish ``texts`` to
    ``room``, one ``broadcast_sync`` each, in order; the finished process."""
    events = [message_event(room, text, number) for number, text in enumerate(texts)]
    return subprocess.run(
        [sys.executable, "-c", PUBLISHER, room_topic(room)],
        cwd=PROJECT_ROOT,
        env=env,
        input=json.dumps(events),
        capture_output=True,
        text=True,
        timeout=PUBLISHER_TIMEOUT,
        check=False,
    )


def subscription_query(room: str, fields: str = "text") -> str:
    """The demo's ``messageAdded`` subscription on ``room``."""
    return f'subscription {{ messageAdded(room: "{room}") {{ {fields} }} }}'


#: Seconds each probe of ``publish_until_received`` waits for its event.
PROBE_WAIT = 0.1


async def publish_until_received(
    publish: Callable[[str], Awaitable[object]],
    *receivers: Callable[[float], Awaitable[str]],
    label: str = "probe",
    timeout: float = 10.0,
) -> int:
    """Return once each subscription behind a ``receiver(timeout)`` (the text of its next
    event) demonstrably receives what ``publish(text)`` publishes; how many probes it took.

    A server tells nobody when a subscription has joined its topic's group, and events
    published before that are not delivered: so publish numbered probes, one every
    ``PROBE_WAIT`` (per subscription still waiting) at most, until each subscription has
    received one. From its first probe on, a subscription must receive every later probe,
    once and in order; all of them are read here, so the next event is the caller's.
    ``publish`` returns False for a probe it could not publish, which nobody then expects.
    """
    deadline = time.monotonic() + timeout
    published: list[int] = []
    last_read: dict[int, int] = {}  # receiver index -> number of the last probe it read

    async def read_after(index: int, first: int) -> None:
        for expected in [number for number in published if number > first]:
            text = await receivers[index](timeout)
            assert text == f"{label} {expected}", text
        last_read[index] = published[-1]

    number = -1
    while len(last_read) < len(receivers):
        if time.monotonic() > deadline:
            raise AssertionError(f"Not every subscription received a {label!r} in {timeout}s")
        number += 1
        if await publish(f"{label} {number}") is not False:
            published.append(number)
        for index, receive in enumerate(receivers):
            if index in last_read:
                continue
            try:
                text = await receive(PROBE_WAIT)
            except TimeoutError:
                continue
            assert text.startswith(f"{label} "), text
            first = int(text.removeprefix(f"{label} "))
            assert first in published, text
            await read_after(index, first)
    for index in range(len(receivers)):
        await read_after(index, last_read[index])
    return number + 1


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """A memory figure of process ``pid`` from /proc (VmRSS now, VmHWM its peak), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"No {field} in /proc/{pid}/status")
