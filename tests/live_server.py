"""Run the demo project in a real ``daphne`` (or ``uvicorn``) process for end-to-end tests.

``running_daphne(directory)`` migrates a fresh SQLite database in ``directory`` (or its
PostgreSQL stand-in, ``tests.server_database``), starts
``python -m daphne`` on a free port of 127.0.0.1, waits until it accepts TCP connections and
yields a ``LiveServer``; on exit it stops exactly that process (by the PID it started) and
keeps its output for inspection. ``running_server(directory, "uvicorn", application=...)``
does the same with another server or ASGI application. ``REDIS_URL`` in the environment is
passed on, so the same tests can run on channels-redis instead of the in-memory channel
layer; ``env`` adds or overrides variables for one server (its Redis, ``GQLCHANNELS_*``
settings of the demo). ``project`` serves another Django project than the demo (its
directory, where ``manage.py`` is; give its settings in ``env``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests import server_database

HOST = "127.0.0.1"
ORIGIN = f"http://{HOST}"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
ASGI_APPLICATION = "demo_project.asgi:application"
#: Seconds the server gets to accept TCP connections after it was started.
STARTUP_TIMEOUT = 15.0
#: Seconds the server gets to exit after SIGTERM before it is killed.
SHUTDOWN_TIMEOUT = 10.0
#: Seconds a management command (``migrate`` first of all) may take.
MANAGE_TIMEOUT = 120.0
#: Fresh ports tried when the one picked was taken between picking and binding.
PORT_ATTEMPTS = 3


class ServerFailed(RuntimeError):
    """The server did not come up; the message carries what it printed."""


@dataclass
class LiveServer:
    """A started server process: where to reach it, and what it printed."""

    process: subprocess.Popen[bytes]
    port: int
    env: dict[str, str]
    stdout_path: Path
    stderr_path: Path
    exit_code: int | None = field(default=None)
    #: The directory of the Django project served (where its ``manage.py`` is).
    project: Path = field(default=PROJECT_ROOT)

    @property
    def ws_url(self) -> str:
        """The demo's GraphQL WebSocket endpoint."""
        return f"ws://{HOST}:{self.port}/graphql/"

    @property
    def http_url(self) -> str:
        """The server's root URL (the demo's admin is under ``/admin/``)."""
        return f"http://{HOST}:{self.port}"

    def manage(self, *args: str) -> str:
        """Run a management command on the server's database and settings; its stdout."""
        return manage(self.env, *args, project=self.project)

    def output(self) -> str:
        """Everything the server wrote to stderr so far (Python logging goes there)."""
        return self.stderr_path.read_text(errors="replace")

    def terminate(self) -> None:
        """Send SIGTERM, as a process manager does on a deploy (only this process, by PID)."""
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for the process to exit; its exit code."""
        self.exit_code = self.process.wait(timeout=timeout)
        return self.exit_code

    def stop(self) -> int:
        """Terminate the server (SIGTERM, then SIGKILL after ``SHUTDOWN_TIMEOUT``); idempotent.

        Only this process, by its PID, is signalled. Returns its exit code.
        """
        if self.exit_code is not None:
            return self.exit_code
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=SHUTDOWN_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=SHUTDOWN_TIMEOUT)
        self.exit_code = self.process.returncode
        return self.exit_code

    def kill(self) -> int:
        """SIGKILL the server, as a crash or an OOM kill would: no shutdown code runs, so its
        connections' registry rows stay behind. Only this process, by its PID. Its exit code."""
        if self.exit_code is None:
            if self.process.poll() is None:
                self.process.kill()
            self.exit_code = self.process.wait(timeout=SHUTDOWN_TIMEOUT)
        return self.exit_code


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def server_environment(database: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of both ``migrate`` and the server: the demo's settings, on
    ``database``, with debugging off (as in production), then ``extra``."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="demo_project.settings",
        DJANGO_DEBUG="0",
        PYTHONUNBUFFERED="1",
    )
    env.update(server_database.environment(database))
    env.update(extra or {})
    return env


def manage(env: dict[str, str], *args: str, project: Path = PROJECT_ROOT) -> str:
    """Run ``project``'s ``manage.py *args`` in ``env``; its stdout, or ServerFailed with all
    its output."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=project,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=MANAGE_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        raise ServerFailed(
            f"manage.py {' '.join(args)} exited with {result.returncode}:\n"
            f"{result.stdout}{result.stderr}"
        )
    return result.stdout


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _command(
    server: str, port: int, application: str, verbosity: int | None, options: Sequence[str]
) -> list[str]:
    if server == "uvicorn":
        command = [sys.executable, "-m", "uvicorn", "--host", HOST, "--port", str(port)]
        return [*command, *options, application]
    command = [sys.executable, "-m", "daphne", "-b", HOST, "-p", str(port)]
    if verbosity is not None:
        command += ["-v", str(verbosity)]
    return [*command, *options, application]


def _start(
    directory: Path,
    env: dict[str, str],
    attempt: int,
    verbosity: int | None,
    server: str = "daphne",
    application: str = ASGI_APPLICATION,
    options: Sequence[str] = (),
    project: Path = PROJECT_ROOT,
) -> LiveServer:
    port = free_port()
    stdout_path = directory / f"{server}-{attempt}.out"
    stderr_path = directory / f"{server}-{attempt}.err"
    # Files, not pipes: a pipe nobody reads fills up and then blocks the server's logging.
    command = _command(server, port, application, verbosity, options)
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            command,
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    return LiveServer(process, port, env, stdout_path, stderr_path, project=project)


def _wait_until_up(server: LiveServer) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ServerFailed(
                f"the server exited with {server.process.returncode} before accepting "
                f"connections:\n{server.output()}"
            )
        if _accepts_connections(server.port):
            return
        time.sleep(0.05)
    server.stop()
    raise ServerFailed(
        f"the server did not accept connections within {STARTUP_TIMEOUT}s:\n{server.output()}"
    )


@contextlib.contextmanager
def running_daphne(
    directory: Path,
    verbosity: int | None = None,
    env: dict[str, str] | None = None,
    database: Path | None = None,
    options: Sequence[str] = (),
) -> Iterator[LiveServer]:
    """Migrate a database in ``directory``, serve the demo from daphne, stop it on exit.
    (``running_server`` with daphne and the demo's application; see there.)"""
    with running_server(
        directory, verbosity=verbosity, env=env, database=database, options=options
    ) as live:
        yield live


@contextlib.contextmanager
def running_server(
    directory: Path,
    server: str = "daphne",
    application: str = ASGI_APPLICATION,
    verbosity: int | None = None,
    env: dict[str, str] | None = None,
    database: Path | None = None,
    options: Sequence[str] = (),
    project: Path = PROJECT_ROOT,
) -> Iterator[LiveServer]:
    """Migrate a database in ``directory``, serve ``application`` from ``server`` (daphne or
    uvicorn), stop it on exit. ``options`` are the server's own command-line options;
    ``project`` the directory of the Django project served (by default this checkout's demo).

    ``verbosity`` is daphne's ``-v``: at 2 and above it also logs Twisted's own errors,
    which it otherwise discards. ``env`` is added to the environment of ``migrate`` and of
    the server (e.g. ``REDIS_URL``, ``GQLCHANNELS_GROUP_EXPIRY``). ``database`` is the SQLite
    file to use instead of ``directory/db.sqlite3``: servers given the same one share it
    (start them one after the other, so that only the first one's ``migrate`` does work).
    Under ``GQLCHANNELS_TEST_DATABASE=postgres`` a PostgreSQL database stands for each file
    (``tests.server_database``).
    """
    directory.mkdir(parents=True, exist_ok=True)
    database = database or directory / "db.sqlite3"
    with server_database.provisioned(database):
        with _serving(
            directory, server, application, verbosity, database, env, options, project
        ) as live:
            yield live


@contextlib.contextmanager
def _serving(
    directory: Path,
    server: str,
    application: str,
    verbosity: int | None,
    database: Path,
    extra: dict[str, str] | None,
    options: Sequence[str],
    project: Path,
) -> Iterator[LiveServer]:
    env = server_environment(database, extra)
    manage(env, "migrate", "--noinput", project=project)
    for attempt in range(1, PORT_ATTEMPTS + 1):
        live = _start(directory, env, attempt, verbosity, server, application, options, project)
        try:
            _wait_until_up(live)
        except BaseException as failure:
            live.stop()
            # Another process may have bound the port between free_port() and the server.
            text = str(failure)
            taken = isinstance(failure, ServerFailed) and (
                "Address already in use" in text or "address already in use" in text
            )
            if taken and attempt < PORT_ATTEMPTS:
                continue
            raise
        break
    try:
        yield live
    finally:
        live.stop()
