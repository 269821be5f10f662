"""The database of the servers a test starts: a SQLite file, or under
``GQLCHANNELS_TEST_DATABASE=postgres`` a PostgreSQL database of their own.

Each SQLite file a test gives ``running_server`` (servers given the same file share it) maps
to one PostgreSQL database, created before the servers' ``migrate`` and dropped when the
last server using it has stopped; the test process reads it with ``connect`` (the servers'
rows are not in pytest-django's test database, as they are not in its in-memory SQLite).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

#: Whether this run's tests (and the servers they start) use PostgreSQL.
POSTGRES = os.environ.get("GQLCHANNELS_TEST_DATABASE") == "postgres"

#: Seconds a connection attempt or a lock wait may take.
TIMEOUT = 15.0

#: Databases created for servers, and how many running servers use each.
_users: dict[str, int] = {}


def postgres_name(database: Path) -> str:
    """The PostgreSQL database standing for the SQLite file ``database``."""
    digest = hashlib.sha1(str(database.resolve()).encode()).hexdigest()[:20]
    return f"gqlc_live_{digest}"


def environment(database: Path) -> dict[str, str]:
    """What a server's environment needs to use ``database`` (or its PostgreSQL stand-in)."""
    if POSTGRES:
        return {
            "DJANGO_SQLITE_PATH": str(database),
            "GQLCHANNELS_POSTGRES_NAME": postgres_name(database),
        }
    return {"DJANGO_SQLITE_PATH": str(database)}


def _postgres(env: Mapping[str, str], name: str, autocommit: bool = False) -> Any:
    import psycopg

    return psycopg.connect(
        host=env.get("GQLCHANNELS_POSTGRES_HOST", "127.0.0.1"),
        port=int(env.get("GQLCHANNELS_POSTGRES_PORT", "5432")),
        user=env.get("GQLCHANNELS_POSTGRES_USER", "postgres"),
        password=env.get("GQLCHANNELS_POSTGRES_PASSWORD", "") or None,
        dbname=name,
        autocommit=autocommit,
        connect_timeout=int(TIMEOUT),
    )


@contextlib.contextmanager
def provisioned(database: Path) -> Iterator[None]:
    """Make sure ``database`` exists while the block runs (PostgreSQL: create it on first
    use, drop it when its last user leaves; SQLite creates its file itself)."""
    if not POSTGRES:
        yield
        return
    name = postgres_name(database)
    if not _users.get(name):
        with _postgres(os.environ, "postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
    _users[name] = _users.get(name, 0) + 1
    try:
        yield
    finally:
        _users[name] -= 1
        if not _users[name]:
            del _users[name]
            with _postgres(os.environ, "postgres", autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def connect(env: Mapping[str, str]) -> Iterator[Any]:
    """A DB-API connection to the database of the server started with ``env``; queries
    take ``%s`` placeholders on both backends."""
    if POSTGRES:
        with _postgres(env, env["GQLCHANNELS_POSTGRES_NAME"]) as connection:
            yield connection
        return
    connection = sqlite3.connect(env["DJANGO_SQLITE_PATH"], timeout=TIMEOUT)
    try:
        yield _SQLite(connection)
    finally:
        connection.close()


class _SQLite:
    """A sqlite3 connection that takes ``%s`` placeholders, as psycopg's does."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def execute(self, query: str, parameters: Any = ()) -> sqlite3.Cursor:
        """Run ``query`` with ``?`` for each ``%s``."""
        return self._connection.execute(query.replace("%s", "?"), parameters)
