"""System checks: each id fires on the misconfiguration it names, and only then."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import override_settings

from gqlchannels import checks, conf


def ids(messages) -> list[str]:
    return [message.id for message in messages]


def test_valid_settings_pass_every_check():
    assert checks.check_settings() == []
    assert checks.check_schema() == []
    assert checks.check_channel_layer() == []
    assert checks.check_tracking() == []
    assert checks.check_validation_rules() == []
    assert checks.check_ignored_protections() == []


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
        {"MAX_FRAME_DEPTH": 0},
        {"DOCUMENT_CACHE_BYTES": 0},
        {"TRACKING_MAX_DOCUMENT_BYTES": None},
        {"SEND_WINDOW": 2.5},
        {"SUBSCRIPTION_BUFFER_SIZE": True},
    ],
)
def test_integers_that_are_not_positive_are_e004(setting):
    with override_settings(GQLCHANNELS=setting):
        assert ids(checks.check_settings()) == ["gqlchannels.E004"]


@pytest.mark.parametrize(
    "setting",
    [
        {"MAX_DOCUMENT_TOKENS": 0},
        {"MAX_DOCUMENT_TOKENS": 1.5},
        {"MAX_DOCUMENT_TOKENS": "15000"},
    ],
)
def test_document_tokens_are_an_optional_positive_integer_e004(setting):
    with override_settings(GQLCHANNELS=setting):
        assert ids(checks.check_settings()) == ["gqlchannels.E004"]


@override_settings(GQLCHANNELS={"MAX_DOCUMENT_TOKENS": None})
def test_document_tokens_switched_off_with_none_are_valid():
    assert checks.check_settings() == []


@pytest.mark.parametrize(
    "setting",
    [
        {"KEEPALIVE_INTERVAL": -1},
        {"CONNECTION_INIT_WAIT_TIMEOUT": "3"},
        {"PONG_TIMEOUT": True},
        {"DISCONNECT_TIMEOUT": None},
        {"BROADCAST_TIMEOUT": -0.5},
        {"DRAIN_WINDOW": "5"},
    ],
)
def test_durations_below_zero_or_not_numbers_are_e009(setting):
    with override_settings(GQLCHANNELS=setting):
        assert ids(checks.check_settings()) == ["gqlchannels.E009"]


@pytest.mark.parametrize(
    "setting",
    [
        {"TRACKING_FLUSH_INTERVAL": 0},
        {"HEARTBEAT_INTERVAL": -1},
        {"STALE_AFTER": "60"},
        {"STALE_AFTER": True},
        {"STALE_AFTER": None},
    ],
)
def test_loop_intervals_that_are_not_above_zero_are_e010(setting):
    with override_settings(GQLCHANNELS=setting):
        assert ids(checks.check_settings()) == ["gqlchannels.E010"]


def test_each_numeric_kind_of_setting_has_its_own_check_id():
    numeric = {setting.kind for setting in conf.SETTINGS} & set(checks._NUMBER_CHECKS)
    assert len({checks._NUMBER_CHECKS[kind] for kind in numeric}) == len(numeric) == 3


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

    registered: list[Callable[..., object]] = list(registry.get_checks())
    assert checks.check_settings in registered and checks.check_channel_layer in registered
    assert checks.check_tracking in registered


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_tracking_that_is_not_a_bool_is_e007(value):
    with override_settings(GQLCHANNELS={"TRACKING": value}):
        assert ids(checks.check_tracking()) == ["gqlchannels.E007"]


@pytest.mark.parametrize(
    "setting",
    [
        {"STALE_AFTER": 15.0},
        {"STALE_AFTER": 10.0},
        {"HEARTBEAT_INTERVAL": 30.0, "STALE_AFTER": 30.5, "TRACKING_FLUSH_INTERVAL": 1.0},
    ],
)
def test_staleness_within_a_heartbeat_is_w003(setting):
    with override_settings(GQLCHANNELS=setting):
        assert ids(checks.check_tracking()) == ["gqlchannels.W003"]


def test_staleness_within_a_heartbeat_is_fine_when_tracking_is_off():
    with override_settings(GQLCHANNELS={"TRACKING": False, "STALE_AFTER": 1.0}):
        assert checks.check_tracking() == []


def test_w003_stays_quiet_when_e010_already_reports_the_numbers():
    with override_settings(GQLCHANNELS={"STALE_AFTER": 0}):
        assert checks.check_tracking() == []
        assert ids(checks.check_settings()) == ["gqlchannels.E010"]


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


def test_pubsub_layer_host_without_a_socket_timeout_passes():
    # The pub/sub layer never blocks on a read: redis-py 8's 5 s timeout cuts nothing.
    hosts = ["redis://127.0.0.1:6379"]
    backend = "channels_redis.pubsub.RedisPubSubChannelLayer"
    layers = {"default": {"BACKEND": backend, "CONFIG": {"hosts": hosts}}}
    with override_settings(CHANNEL_LAYERS=layers):
        assert checks.check_redis_socket_timeout() == []


def test_redis_host_with_a_longer_socket_timeout_passes():
    hosts = [{"address": "redis://127.0.0.1:6379", "socket_timeout": 10}]
    layers = {"default": {"BACKEND": REDIS, "CONFIG": {"hosts": hosts}}}
    with override_settings(CHANNEL_LAYERS=layers):
        assert checks.check_redis_socket_timeout() == []


@pytest.mark.parametrize("databases", [{}, {"default": {"ENGINE": "django.db.backends.dummy"}}])
def test_tracking_without_a_database_is_w004(databases):
    with (
        pytest.warns(UserWarning, match="DATABASES"),
        override_settings(DATABASES=databases, GQLCHANNELS={}),
    ):
        assert ids(checks.check_tracking()) == ["gqlchannels.W004"]
        with override_settings(GQLCHANNELS={"TRACKING": False}):
            assert checks.check_tracking() == []


@pytest.mark.parametrize(
    "setting",
    [{"MAX_QUERY_DEPTH": 0}, {"MAX_ALIASES": "30"}, {"MAX_QUERY_COST": 2.5}],
)
def test_limits_that_are_not_positive_integers_are_e004(setting):
    with override_settings(GQLCHANNELS=setting):
        assert ids(checks.check_settings()) == ["gqlchannels.E004"]


@override_settings(
    GQLCHANNELS={"MAX_QUERY_DEPTH": None, "MAX_ALIASES": None, "MAX_QUERY_COST": None}
)
def test_limits_switched_off_with_none_are_valid():
    assert checks.check_settings() == []


@override_settings(GQLCHANNELS={"VALIDATION_RULES": ["tests.validation_rules.NoNodesRule"]})
def test_validation_rules_that_import_as_rule_classes_pass():
    assert checks.check_validation_rules() == []


@pytest.mark.parametrize(
    "rules",
    [
        ["tests.validation_rules.NoSuchRule"],
        ["tests.schema.probe"],
        ["graphql.GraphQLError"],
        "tests.validation_rules.NoNodesRule",
    ],
)
def test_validation_rules_that_do_not_import_as_rule_classes_are_e008(rules):
    with override_settings(GQLCHANNELS={"VALIDATION_RULES": rules}):
        assert ids(checks.check_validation_rules()) == ["gqlchannels.E008"]


@override_settings(GQLCHANNELS={"SCHEMA": "tests.strawberry_schema.protected"})
def test_each_strawberry_extension_that_will_not_run_is_w005():
    messages = checks.check_ignored_protections()
    assert ids(messages) == ["gqlchannels.W005"] * 3
    assert "strawberry.extensions.mask_errors.MaskErrors" in messages[0].msg
    assert "(a factory)" in messages[1].msg


@override_settings(GQLCHANNELS={"SCHEMA": "tests.strawberry_schema.plain"})
def test_a_strawberry_schema_without_extensions_passes():
    assert checks.check_ignored_protections() == []


@override_settings(
    GQLCHANNELS={}, GRAPHENE={"MIDDLEWARE": ["graphene_django.debug.DjangoDebugMiddleware"]}
)
def test_graphene_middleware_that_will_not_run_is_w006():
    messages = checks.check_ignored_protections()
    assert ids(messages) == ["gqlchannels.W006"]
    assert "graphene_django.debug.DjangoDebugMiddleware" in messages[0].msg


@override_settings(GQLCHANNELS="a.string")
def test_a_gqlchannels_setting_that_is_not_a_dict_is_e001_and_reading_settings_survives_it():
    assert ids(checks.check_settings()) == ["gqlchannels.E001"]
    assert conf.get("TRACKING") is True  # the default: apps.ready gets as far as the checks


def test_an_as_asgi_option_of_the_wrong_kind_is_refused_when_the_route_is_built():
    from gqlchannels.consumers import GraphQLWSConsumer

    with pytest.raises(TypeError, match="keepalive_interval='15' must be a number >= 0 or None"):
        GraphQLWSConsumer.as_asgi(keepalive_interval="15")


@override_settings(DEBUG=False, GQLCHANNELS={"DEBUG_ERRORS": True})
def test_debug_errors_on_with_debug_off_is_w007_for_deploy():
    assert ids(checks.check_debug_errors_deployed()) == ["gqlchannels.W007"]


@override_settings(DEBUG=False)
def test_debug_errors_following_debug_is_fine_for_deploy():
    assert checks.check_debug_errors_deployed() == []


def test_an_as_asgi_schema_path_that_does_not_import_fails_when_the_route_is_built():
    from gqlchannels.consumers import GraphQLWSConsumer

    with pytest.raises(ImportError):
        GraphQLWSConsumer.as_asgi(schema="tests.schema.no_such_schema")


def test_an_as_asgi_schema_that_is_not_a_schema_fails_when_the_route_is_built():
    from gqlchannels.consumers import GraphQLWSConsumer

    with pytest.raises(TypeError, match="Not a GraphQL schema"):
        GraphQLWSConsumer.as_asgi(schema=42)


@pytest.mark.parametrize("value", ["yes", 1, 0])
def test_debug_errors_that_is_not_a_bool_or_none_is_e014(value):
    with override_settings(GQLCHANNELS={"DEBUG_ERRORS": value}):
        assert ids(checks.check_settings()) == ["gqlchannels.E014"]


@pytest.mark.parametrize("value", [["default"], 1, None])
def test_channel_layer_alias_that_is_not_a_string_is_e015(value):
    with override_settings(GQLCHANNELS={"CHANNEL_LAYER": value}):
        assert ids(checks.check_settings()) == ["gqlchannels.E015"]
        assert checks.check_channel_layer() == []  # the alias is not looked up


@pytest.mark.parametrize("protocols", [5, [["graphql-ws"]], ("graphql-ws", 7)])
def test_protocols_that_are_not_a_list_of_names_are_e003(protocols):
    with override_settings(GQLCHANNELS={"PROTOCOLS": protocols}):
        assert ids(checks.check_settings()) == ["gqlchannels.E003"]


@pytest.mark.parametrize("protocols", ["graphql-ws", ["bogus"], []])
def test_an_as_asgi_protocols_option_that_is_not_a_list_of_names_is_refused(protocols):
    from gqlchannels.consumers import GraphQLWSConsumer

    with pytest.raises(TypeError, match="protocols="):
        GraphQLWSConsumer.as_asgi(protocols=protocols)
