"""Processes around a benchmark: the daphne server, the publisher, and the server's memory
and CPU as the operating system sees them.

Every process is started here and stopped here by the handle (PID) it was started with,
never by name. Servers listen on a free port of 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.servers import SERVERS

PROJECT_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
DEFAULT_REDIS_URL = f"redis://{HOST}:6379/0"
#: Seconds a server gets to accept TCP connections after it was started.
STARTUP_TIMEOUT = 30.0
#: Seconds a server or publisher gets to exit after SIGTERM before it is killed.
SHUTDOWN_TIMEOUT = 10.0
#: Seconds one publish request may take (a rate-limited batch runs for its whole duration).
PUBLISH_TIMEOUT = 600.0


class ServerFailed(RuntimeError):
    """The server did not come up, or died; the message carries what it printed."""


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (Linux ``/proc``; psutil elsewhere, if installed)."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except FileNotFoundError:
        import psutil  # type: ignore[import-untyped]  # optional, and so are its stubs

        return int(psutil.Process(pid).memory_info().rss)


def memory_status(pid: int) -> dict[str, int]:
    """``VmRSS`` (resident now) and ``VmHWM`` (the peak resident size since the process
    started, or since ``reset_peak_rss``) of ``pid``, in bytes, from ``/proc/<pid>/status``."""
    found = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0]) * 1024
    return found


def reset_peak_rss(pid: int) -> bool:
    """Start ``VmHWM`` of ``pid`` again from its current RSS (Linux 4.0+: ``5`` written to
    ``/proc/<pid>/clear_refs``; a process of our own), so the next peak read is the peak of
    what happens from now on. False when the kernel does not allow it: the peak read is
    then the process's peak since it started."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time ``pid`` has used."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except FileNotFoundError:
        import psutil

        times = psutil.Process(pid).cpu_times()
        return float(times.user + times.system)


def python_path() -> str:
    """PYTHONPATH with the project root first, so ``benchmarks`` imports in child processes."""
    return os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))


class Server:
    """One daphne process serving one of ``SERVERS`` on one channel layer."""

    def __init__(self, kind: str, layer: str, logs: Path, redis_url: str = DEFAULT_REDIS_URL):
        self.kind = SERVERS[kind]
        self.layer = layer
        self.logs = logs
        self.redis_url = redis_url
        self.redis_prefix = f"gqlcbench{uuid.uuid4().hex[:10]}"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.env = dict(os.environ)
        self.env.update(
            DJANGO_SETTINGS_MODULE=self.kind.settings,
            BENCH_LAYER=layer,
            BENCH_REDIS_URL=redis_url,
            BENCH_REDIS_PREFIX=self.redis_prefix,
            BENCH_SQLITE_PATH=str(logs / f"{kind}-{layer}-{self.redis_prefix}.sqlite3"),
            PYTHONPATH=python_path(),
            PYTHONUNBUFFERED="1",
        )

    @property
    def url(self) -> str:
        """The GraphQL WebSocket endpoint."""
        return f"ws://{HOST}:{self.port}/graphql/"

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.process is not None
        return self.process.pid

    @property
    def stderr_path(self) -> Path:
        """Where the server's log goes."""
        return self.logs / f"{self.kind.name}-{self.layer}-{self.port}.err"

    def output(self) -> str:
        """What the server logged so far."""
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def start(self) -> None:
        """Start daphne (access log off: it would cost a write per connection) and return once
        it accepts TCP connections."""
        self.logs.mkdir(parents=True, exist_ok=True)
        if self.kind.migrate:
            self._migrate()
        self.port = free_port()
        command = [
            sys.executable, "-m", "daphne",
            "-b", HOST, "-p", str(self.port),
            "-v", "0",
            self.kind.application,
        ]  # fmt: skip
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                command,
                cwd=PROJECT_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerFailed(
                    f"{self.kind.name} exited with {self.process.returncode}:\n{self.output()}"
                )
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise ServerFailed(f"{self.kind.name} did not listen within {STARTUP_TIMEOUT}s")

    def _migrate(self) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "django", "migrate", "--noinput", "-v", "0"],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=STARTUP_TIMEOUT * 4,
            check=False,
        )
        if result.returncode != 0:
            raise ServerFailed(f"migrate failed:\n{result.stdout}{result.stderr}")

    def alive(self) -> bool:
        """Whether the server process still runs."""
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``SHUTDOWN_TIMEOUT``; only this process; idempotent."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=SHUTDOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=SHUTDOWN_TIMEOUT)
        if self.layer == "redis":
            self._forget_redis_keys()
        Path(self.env["BENCH_SQLITE_PATH"]).unlink(missing_ok=True)

    def _forget_redis_keys(self) -> None:
        """Delete this run's keys (groups would otherwise linger for ``group_expiry``)."""
        try:
            import redis
        except ImportError:  # pragma: no cover
            return
        client = redis.Redis.from_url(self.redis_url, socket_timeout=5)
        try:
            keys = list(client.scan_iter(match=f"{self.redis_prefix}*", count=1000))
            if keys:
                client.delete(*keys)
        except redis.RedisError:
            pass
        finally:
            client.close()

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def batch_request(
    topic: str, start: int, count: int, rate: float | None, pad_bytes: int, stamp_schedule: bool
) -> dict[str, Any]:
    """One batch as ``benchmarks.servers.common.publish_request`` reads it."""
    return {
        "topic": topic, "start": start, "count": count, "rate": rate, "pad_bytes": pad_bytes,
        "stamp_schedule": stamp_schedule,
    }  # fmt: skip


class HttpPublisher:
    """Publishes through the server's own ``POST /bench/publish``: inside the server process,
    the only place the in-memory layer reaches."""

    def __init__(self, server: Server):
        self.server = server

    async def publish(
        self,
        topic: str,
        start: int,
        count: int,
        rate: float | None = None,
        pad_bytes: int = 0,
        stamp_schedule: bool = False,
    ) -> dict[str, Any]:
        """Publish one batch; answer when the server has published all of it."""
        body = json.dumps(
            batch_request(topic, start, count, rate, pad_bytes, stamp_schedule)
        ).encode()
        async with asyncio.timeout(PUBLISH_TIMEOUT):
            reader, writer = await asyncio.open_connection(HOST, self.server.port)
            try:
                writer.write(
                    b"POST /bench/publish HTTP/1.1\r\nHost: %s\r\n"
                    b"Content-Type: application/json\r\nContent-Length: %d\r\n"
                    b"Connection: close\r\n\r\n%s" % (HOST.encode(), len(body), body)
                )
                await writer.drain()
                response = await reader.read()
            finally:
                writer.close()
        head, _, payload = response.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise ServerFailed(f"publish failed: {response[:500]!r}")
        return dict(json.loads(payload))

    async def __aenter__(self) -> HttpPublisher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None


class ProcessPublisher:
    """Publishes from a process of its own (``benchmarks.publisher``), through the channel
    layer, so that publishing takes nothing from the server's loop."""

    def __init__(self, server: Server):
        self.server = server
        self.process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> ProcessPublisher:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.publisher",
            self.server.kind.name,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=PROJECT_ROOT,
            env=self.server.env,
        )
        await self._answer(STARTUP_TIMEOUT)
        return self

    async def _answer(self, timeout: float) -> dict[str, Any]:
        assert self.process is not None and self.process.stdout is not None
        async with asyncio.timeout(timeout):
            line = await self.process.stdout.readline()
        if not line:
            raise ServerFailed(f"publisher exited with {self.process.returncode}")
        answer = dict(json.loads(line))
        if "error" in answer:
            raise ServerFailed(f"publisher: {answer['error']}")
        return answer

    async def publish(
        self,
        topic: str,
        start: int,
        count: int,
        rate: float | None = None,
        pad_bytes: int = 0,
        stamp_schedule: bool = False,
    ) -> dict[str, Any]:
        """Publish one batch; answer when all of it is in the layer."""
        assert self.process is not None and self.process.stdin is not None
        request = batch_request(topic, start, count, rate, pad_bytes, stamp_schedule)
        async with self._lock:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            await self.process.stdin.drain()
            return await self._answer(PUBLISH_TIMEOUT)

    async def __aexit__(self, *exc_info: object) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), SHUTDOWN_TIMEOUT)
        except TimeoutError:
            process.kill()  # only the publisher started above, by its handle
            await process.wait()


def publisher_for(server: Server) -> HttpPublisher | ProcessPublisher:
    """In-memory layer: publish inside the server. Redis: from a separate process."""
    return ProcessPublisher(server) if server.layer == "redis" else HttpPublisher(server)


class Profiler:
    """``py-spy record`` on one process for as long as it runs (start, then stop), writing a
    flame graph (``.svg``) or folded stacks (``.txt``, readable with ``benchmarks.profile``).

    ``--nonblocking`` keeps py-spy from pausing the server at each sample, so the profiled
    run is not much slower than an unprofiled one. Needs ``py-spy`` (benchmarks/requirements)
    and the right to ptrace the server (root, or ``kernel.yama.ptrace_scope=0``).
    """

    def __init__(self, pid: int, output: Path, rate: int = 250):
        self.pid = pid
        self.output = output
        self.rate = rate
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start sampling."""
        import shutil

        executable = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        self.output.parent.mkdir(parents=True, exist_ok=True)
        kind = "raw" if self.output.suffix == ".txt" else "flamegraph"
        command = [executable, "record", "--nonblocking", "-r", str(self.rate), "-f", kind]
        command += ["-o", str(self.output), "--pid", str(self.pid)]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)  # py-spy attaches before the measured work starts

    def stop(self) -> None:
        """Stop sampling and let py-spy write its output (SIGINT, as Ctrl-C would)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
