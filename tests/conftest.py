"""Fixtures shared by the suite."""

from __future__ import annotations

import pytest

from tests import schema as test_schema


@pytest.fixture(autouse=True)
def fresh_probe() -> test_schema.Probe:
    """Each test sees only its own subscriptions' start and ``finally`` events."""
    test_schema.probe.__init__()
    return test_schema.probe
