"""Check E020: ``GQLCHANNELS['PLAYGROUND']`` is None, True or False, and nothing else."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import override_settings

from gqlchannels import checks


def ids(messages) -> list[str]:
    return [message.id for message in messages]


@pytest.mark.parametrize("value", ["true", "false", 0, 1, [True]])
def test_a_playground_setting_that_is_not_none_true_or_false_is_e020(value):
    with override_settings(GQLCHANNELS={"PLAYGROUND": value}):
        assert ids(checks.check_playground()) == ["gqlchannels.E020"]


@pytest.mark.parametrize("value", [None, True, False])
def test_none_true_and_false_pass_the_playground_check(value):
    with override_settings(GQLCHANNELS={"PLAYGROUND": value}):
        assert checks.check_playground() == []


def test_the_playground_check_is_registered_with_django():
    from django.core.checks.registry import registry

    registered: list[Callable[..., object]] = list(registry.get_checks())
    assert checks.check_playground in registered
