"""System checks: each id fires on the misconfiguration it names, and only then."""

from __future__ import annotations

import pytest
from django.test import override_settings

from gqlchannels import checks


def ids(messages) -> list[str]:
    return [message.id for message in messages]


def test_valid_settings_pass_every_check():
    assert checks.check_settings() == []
    assert checks.check_schema() == []
    assert checks.check_channel_layer() == []


@override_settings(GQLCHANNELS=["not", "a", "dict"])
def test_settings_that_are_not_a_dict_are_e001():
    assert ids(checks.check_settings()) == ["gqlchannels.E001"]


@override_settings(GQLCHANNELS={"KEEPALIVE": 3})
def test_unknown_setting_is_e002():
    assert ids(checks.check_settings()) == ["gqlchannels.E002"]


@pytest.mark.parametrize("protocols", [[], ["graphql-subscriptions"], "graphql-ws"])
def test_unknown_or_empty_protocols_are_e003(protocols):
    with override_settings(GQLCHANNELS={"PROTOCOLS": protocols}):
        assert ids(checks.check_settings()) == ["gqlchannels.E003"]


@pytest.mark.parametrize(
    "setting",
    [
        {"MAX_OPERATIONS_PER_CONNECTION": 0},
        {"MAX_MESSAGE_BYTES": "1MB"},
        {"KEEPALIVE_INTERVAL": -1},
        {"CONNECTION_INIT_WAIT_TIMEOUT": "3"},
        {"DISCONNECT_TIMEOUT": None},
    ],
)
def test_out_of_range_numbers_are_e004(setting):
    with override_settings(GQLCHANNELS=setting):
        assert ids(checks.check_settings()) == ["gqlchannels.E004"]


@override_settings(GQLCHANNELS={"KEEPALIVE_INTERVAL": None, "CONNECTION_INIT_WAIT_TIMEOUT": 0})
def test_none_and_zero_durations_are_valid():
    assert checks.check_settings() == []


@override_settings(GQLCHANNELS={"SYNC_RESOLVERS": "async"})
def test_unknown_sync_resolver_policy_is_e005():
    assert ids(checks.check_settings()) == ["gqlchannels.E005"]


@override_settings(GQLCHANNELS={"SCHEMA": "tests.schema.no_such_schema"})
def test_schema_path_that_does_not_import_is_e006():
    assert ids(checks.check_schema()) == ["gqlchannels.E006"]


@override_settings(GQLCHANNELS={"SCHEMA": "tests.schema.probe"})
def test_schema_path_to_something_else_is_e006():
    assert ids(checks.check_schema()) == ["gqlchannels.E006"]


@override_settings(CHANNEL_LAYERS={})
def test_missing_channel_layer_is_w001():
    assert ids(checks.check_channel_layer()) == ["gqlchannels.W001"]


def test_checks_are_registered_with_django():
    from django.core.checks.registry import registry

    registered = registry.get_checks()
    assert checks.check_settings in registered and checks.check_channel_layer in registered


REDIS = "channels_redis.core.RedisChannelLayer"


@pytest.mark.parametrize(
    "hosts",
    [
        ["redis://127.0.0.1:6379"],
        [("127.0.0.1", 6379)],
        [{"address": "redis://127.0.0.1:6379", "socket_timeout": 5}],
    ],
)
def test_redis_host_without_a_socket_timeout_above_five_seconds_is_w002(hosts):
    layers = {"default": {"BACKEND": REDIS, "CONFIG": {"hosts": hosts}}}
    with override_settings(CHANNEL_LAYERS=layers):
        assert ids(checks.check_redis_socket_timeout()) == ["gqlchannels.W002"]


def test_redis_host_with_a_longer_socket_timeout_passes():
    hosts = [{"address": "redis://127.0.0.1:6379", "socket_timeout": 10}]
    layers = {"default": {"BACKEND": REDIS, "CONFIG": {"hosts": hosts}}}
    with override_settings(CHANNEL_LAYERS=layers):
        assert checks.check_redis_socket_timeout() == []
