"""Fixtures shared by the suite."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import pytest_django
from channels import DEFAULT_CHANNEL_LAYER
from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer, channel_layers
from django.db import connections

from tests import schema as test_schema


@pytest.fixture(autouse=True)
def fresh_probe() -> test_schema.Probe:
    """Each test sees only its own subscriptions' start and ``finally`` events."""
    test_schema.probe.reset()
    test_schema.hops.reset()
    return test_schema.probe


@pytest.fixture(autouse=True)
def database(transactional_db: None) -> None:
    """Every test may reach the database. Sync resolvers run in asgiref's one shared database
    thread, which checks its connection on every call (``close_old_connections``); SQLite's
    in-memory test database keeps that connection open across tests, so a test without
    database access would trip pytest-django's guard there."""


@pytest.fixture
def fresh_hops() -> test_schema.Hops:
    """The database-thread hop counter of the test schema, from zero."""
    return test_schema.hops


@pytest.fixture
def memory_layer() -> Iterator[InMemoryChannelLayer]:
    """A fresh in-memory layer as the default one for a test, so groups start empty."""
    fresh = InMemoryChannelLayer()
    previous = channel_layers.set(DEFAULT_CHANNEL_LAYER, fresh)
    yield fresh
    if previous is None:
        channel_layers.backends.pop(DEFAULT_CHANNEL_LAYER, None)
    else:
        channel_layers.set(DEFAULT_CHANNEL_LAYER, previous)


@pytest.fixture(scope="session", autouse=True)
def database_thread_closed_at_the_end(
    django_db_setup: None, django_db_blocker: pytest_django.DjangoDbBlocker
) -> Iterator[None]:
    """Close the connections of asgiref's shared database thread before the test database
    is dropped: PostgreSQL refuses to drop a database that a session still uses. (From a
    fresh event loop, so the call goes to that thread, not to this one.)"""
    yield
    with django_db_blocker.unblock():
        asyncio.run(database_sync_to_async(connections.close_all)())
