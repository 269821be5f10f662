"""The load generator: worker processes that each hold a share of the client connections.

Several processes, so that decoding thousands of frames a second is not what limits the
measurement. The driver (``WorkerPool``) speaks to each worker over its stdin/stdout, one
JSON object per line; a worker (``python -m benchmarks.loadgen``) runs one asyncio loop with
its connections and answers each command when it is done:

- ``open {url, protocol, count, concurrency}``: connect ``count`` clients through the ack,
  at most ``concurrency`` at once; per-connection ack latencies.
- ``subscribe {topic, expect, count}``: up to ``count`` open clients without a subscription
  subscribe to ``topic`` and expect events ``0 .. expect - 1``.
- ``primed``: how many subscriptions have seen a priming event (``seq < 0``).
- ``collect {timeout, stall}``: wait until every subscription has every expected event, or
  nothing arrived for ``stall`` seconds, or ``timeout``; then report counts, duplicates,
  reordering and latencies, and whether events were still arriving at the timeout.
- ``abort`` (reset every TCP connection, no close frame), ``close`` (politely), ``exit``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.client import GraphQLClient, Stream

PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: Largest reply line a worker may send (latencies of many thousand deliveries).
LINE_LIMIT = 1 << 28
#: Seconds a worker gets to exit after ``exit`` before it is killed.
EXIT_TIMEOUT = 10.0


class Worker:
    """The connections of one worker process and the commands on them."""

    def __init__(self) -> None:
        self.clients: list[GraphQLClient] = []
        self._forget_streams()

    def _forget_streams(self) -> None:
        #: Subscriptions still missing some expected event; ``all_complete`` when none is.
        self.incomplete = 0
        self.all_complete = asyncio.Event()
        self.all_complete.set()

    async def open(
        self, url: str, protocol: str, count: int, concurrency: int, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Connect ``count`` clients, ``concurrency`` at a time."""
        gate = asyncio.Semaphore(max(1, concurrency))
        latencies: list[float] = []
        failures: list[str] = []

        async def one() -> None:
            client = GraphQLClient(url, protocol)
            async with gate:
                try:
                    latencies.append(await client.open(timeout))
                except Exception as exc:
                    failures.append(repr(exc))
                    client.abort()
                    return
            self.clients.append(client)

        began = time.time()
        await asyncio.gather(*(one() for _ in range(count)))
        return {
            "opened": len(latencies),
            "failed": len(failures),
            "failures": failures[:5],
            "ack_ms": [round(seconds * 1000, 3) for seconds in latencies],
            "began": began,
            "ended": time.time(),
        }

    async def subscribe(self, topic: str, expect: int, count: int | None = None) -> dict[str, Any]:
        """Subscribe up to ``count`` (default: all) open clients that have no subscription yet
        to ``topic``, each expecting events ``0 .. expect - 1``."""
        fresh = [client for client in self.clients if client.stream is None][:count]
        for client in fresh:
            if expect:
                self.incomplete += 1
                self.all_complete.clear()
            await client.subscribe(topic, Stream(expect, self._one_complete))
        return {"subscribed": len(fresh)}

    def _one_complete(self) -> None:
        self.incomplete -= 1
        if self.incomplete <= 0:
            self.all_complete.set()

    def primed(self) -> dict[str, Any]:
        """How many subscriptions saw a priming event, and the errors the server sent."""
        streams = [client.stream for client in self.clients if client.stream is not None]
        return {
            "primed": sum(stream.primed for stream in streams),
            "total": len(streams),
            "errors": sum(len(client.errors) for client in self.clients),
            "first_errors": [str(c.errors[0]) for c in self.clients if c.errors][:3],
        }

    async def collect(self, timeout: float, stall: float = 5.0) -> dict[str, Any]:
        """Wait until every expected event has arrived, or none has for ``stall`` seconds
        (what is missing then is lost), or ``timeout`` passed while events were still
        arriving (what is missing then is late: the server is slow, not losing them)."""
        streams = [client.stream for client in self.clients if client.stream is not None]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        received, progressed = -1, loop.time()
        capped = False
        while not self.all_complete.is_set():
            now = loop.time()
            total = sum(stream.count for stream in streams)
            if total != received:
                received, progressed = total, now
            elif now - progressed >= stall:
                break
            if now >= deadline:
                capped = True
                break
            try:
                async with asyncio.timeout(0.25):
                    await self.all_complete.wait()
            except TimeoutError:
                pass
        streams = [client.stream for client in self.clients if client.stream is not None]
        latencies = [round(latency * 1000, 3) for stream in streams for latency in stream.latencies]
        return {
            "subscriptions": len(streams),
            "capped": capped,
            "complete": sum(stream.complete for stream in streams),
            "received": sum(stream.count for stream in streams),
            "expected": sum(stream.expect for stream in streams),
            "duplicates": sum(stream.duplicates for stream in streams),
            "reordered": sum(stream.reordered for stream in streams),
            "unexpected": sum(stream.unexpected for stream in streams),
            "errors": sum(len(client.errors) for client in self.clients),
            "first_errors": [str(error) for client in self.clients for error in client.errors[:1]][
                :3
            ],
            "first_sent": min((stream.first_sent for stream in streams), default=None),
            "last_received": max((stream.last_received for stream in streams), default=None),
            "latency_ms": latencies,
        }

    def abort(self) -> dict[str, Any]:
        """Reset every connection without a close frame."""
        count = len(self.clients)
        for client in self.clients:
            client.abort()
        self.clients = []
        self._forget_streams()
        return {"aborted": count}

    async def close(self) -> dict[str, Any]:
        """Close every connection politely."""
        clients, self.clients = self.clients, []
        self._forget_streams()
        await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)
        return {"closed": len(clients)}

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run one command."""
        command = request.pop("cmd")
        if command == "open":
            answer = await self.open(**request)
        elif command == "subscribe":
            answer = await self.subscribe(**request)
        elif command == "primed":
            answer = self.primed()
        elif command == "collect":
            answer = await self.collect(**request)
        elif command == "abort":
            answer = self.abort()
        elif command == "close":
            answer = await self.close()
        else:
            raise ValueError(f"Unknown command {command!r}")
        answer["cpu_seconds"] = time.process_time()
        return answer


async def work() -> None:
    """Answer the driver's commands, one per line, until ``exit`` or end of input."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    worker = Worker()
    while line := await reader.readline():
        request = json.loads(line)
        if request.get("cmd") == "exit":
            break
        try:
            answer = await worker.handle(request)
        except Exception as exc:
            answer = {"error": repr(exc)}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    await worker.close()


class WorkerFailed(RuntimeError):
    """A worker answered with an error or died."""


class WorkerPool:
    """``size`` worker processes, driven together; use as an async context manager."""

    def __init__(self, size: int):
        self.size = max(1, size)
        self.processes: list[asyncio.subprocess.Process] = []

    async def __aenter__(self) -> WorkerPool:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")])
        )
        for _ in range(self.size):
            self.processes.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "benchmarks.loadgen",
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    cwd=PROJECT_ROOT,
                    env=env,
                    limit=LINE_LIMIT,
                )
            )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.gather(*(self._stop(process) for process in self.processes))
        self.processes = []

    @staticmethod
    async def _stop(process: asyncio.subprocess.Process) -> None:
        if process.returncode is None and process.stdin is not None:
            try:
                process.stdin.write(b'{"cmd": "exit"}\n')
                await process.stdin.drain()
                process.stdin.close()
            except (BrokenPipeError, ConnectionResetError):
                pass
        try:
            await asyncio.wait_for(process.wait(), EXIT_TIMEOUT)
        except TimeoutError:
            process.kill()  # only the worker this pool started, by its handle
            await process.wait()

    def shares(self, total: int) -> list[int]:
        """``total`` split as evenly as possible over the workers."""
        return [total // self.size + (index < total % self.size) for index in range(self.size)]

    async def call(self, requests: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
        """Send each worker its request (None: nothing) and gather their answers."""

        async def one(
            process: asyncio.subprocess.Process, request: dict[str, Any]
        ) -> dict[str, Any]:
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(json.dumps(request).encode() + b"\n")
            await process.stdin.drain()
            line = await process.stdout.readline()
            if not line:
                raise WorkerFailed(f"worker {process.pid} exited ({process.returncode})")
            answer: dict[str, Any] = json.loads(line)
            if "error" in answer:
                raise WorkerFailed(f"worker {process.pid}: {answer['error']}")
            return answer

        pending = [
            one(process, request)
            for process, request in zip(self.processes, requests, strict=True)
            if request is not None
        ]
        return list(await asyncio.gather(*pending))

    async def all(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        """Send every worker the same request."""
        return await self.call([dict(request) for _ in self.processes])

    async def open(
        self, url: str, protocol: str, count: int, concurrency: int
    ) -> list[dict[str, Any]]:
        """Open ``count`` connections across the workers, ``concurrency`` at once in all."""
        requests: list[dict[str, Any] | None] = []
        for share in self.shares(count):
            requests.append(
                {
                    "cmd": "open",
                    "url": url,
                    "protocol": protocol,
                    "count": share,
                    "concurrency": max(1, concurrency // self.size),
                }
                if share
                else None
            )
        return await self.call(requests)


if __name__ == "__main__":
    asyncio.run(work())
