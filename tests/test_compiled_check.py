"""Check E026: ``GQLCHANNELS['COMPILED_EXECUTION']`` is True or False, and nothing else."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import override_settings

from gqlchannels import checks


def ids(messages) -> list[str]:
    return [message.id for message in messages]


@pytest.mark.parametrize("value", ["false", 0, None])
def test_a_compiled_execution_setting_that_is_not_a_boolean_is_e026(value):
    with override_settings(GQLCHANNELS={"COMPILED_EXECUTION": value}):
        assert ids(checks.check_compiled_execution()) == ["gqlchannels.E026"]


@pytest.mark.parametrize("value", [True, False])
def test_true_and_false_pass_the_compiled_execution_check(value):
    with override_settings(GQLCHANNELS={"COMPILED_EXECUTION": value}):
        assert checks.check_compiled_execution() == []


def test_the_compiled_execution_check_is_registered_with_django():
    from django.core.checks.registry import registry

    registered: list[Callable[..., object]] = list(registry.get_checks())
    assert checks.check_compiled_execution in registered
