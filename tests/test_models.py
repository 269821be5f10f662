"""The registry's one stale API: the querysets' stale/alive predicate, shared by the admin,
its disconnect action and the audit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db.models import Count
from django.test import override_settings
from django.utils import timezone

from gqlchannels.models import Connection, Subscription, stale_cutoff
from tests import registry_rows as rows

pytestmark = pytest.mark.django_db


@pytest.fixture
def registry():
    """One alive and one stale connection, each with one operation."""
    alive, stale = rows.connection(), rows.connection(stale=True)
    return {
        "alive": alive,
        "stale": stale,
        "alive_operation": rows.subscription(alive),
        "stale_operation": rows.subscription(stale),
    }


def ids(queryset) -> set[Any]:
    return set(queryset.values_list("pk", flat=True))


def test_connections_split_into_alive_and_stale_by_their_heartbeat(registry):
    assert ids(Connection.objects.alive()) == {registry["alive"].pk}
    assert ids(Connection.objects.stale()) == {registry["stale"].pk}


def test_operations_are_alive_or_stale_by_their_connections_heartbeat(registry):
    assert ids(Subscription.objects.alive()) == {registry["alive_operation"].pk}
    assert ids(Subscription.objects.stale()) == {registry["stale_operation"].pk}


def test_the_stale_condition_counts_in_one_aggregate(registry):
    stale = Subscription.objects.stale_condition()
    counts = Subscription.objects.aggregate(
        live=Count("pk", filter=~stale), stale=Count("pk", filter=stale)
    )
    assert counts == {"live": 1, "stale": 1}


def test_a_given_cutoff_replaces_stale_after(registry):
    future = timezone.now() + timedelta(minutes=1)
    assert ids(Connection.objects.stale(future)) == {
        registry["alive"].pk,
        registry["stale"].pk,
    }


def test_the_cutoff_is_stale_after_before_now():
    now = timezone.now()
    with override_settings(GQLCHANNELS={"STALE_AFTER": 30.0}):
        assert stale_cutoff(now) == now - timedelta(seconds=30)
    assert stale_cutoff(now, stale_after=5) == now - timedelta(seconds=5)


def test_a_row_is_stale_exactly_when_the_queryset_says_so(registry):
    for row in Connection.objects.all():
        assert row.is_stale() == Connection.objects.stale().filter(pk=row.pk).exists()
