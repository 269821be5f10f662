"""System checks on the ASGI side: an application to serve from, daphne's place, a schema
for every route, and (``check --deploy``) a shared channel layer and origin validation."""

from __future__ import annotations

import pytest
from django.test import override_settings

from gqlchannels import checks
from gqlchannels.routes import consumer_routes
from tests import asgi_apps


def ids(messages) -> list[str]:
    return [message.id for message in messages]


def test_the_demo_project_passes_every_asgi_check():
    assert checks.check_asgi_application() == []
    assert checks.check_daphne_order() == []
    assert checks.check_route_schemas() == []
    assert checks.check_origin_validation_deployed() == []


@override_settings(ASGI_APPLICATION=None)
def test_unset_asgi_application_is_w008():
    messages = checks.check_asgi_application()
    assert ids(messages) == ["gqlchannels.W008"]
    assert "'daphne' first in INSTALLED_APPS" in (messages[0].hint or "")


@override_settings(ASGI_APPLICATION="tests.asgi_apps.no_such_application")
def test_asgi_application_that_does_not_import_is_e011():
    assert ids(checks.check_asgi_application()) == ["gqlchannels.E011"]


def test_daphne_after_staticfiles_is_w009(settings):
    apps = [app for app in settings.INSTALLED_APPS if app != "daphne"]
    with override_settings(INSTALLED_APPS=[*apps, "daphne"]):
        assert ids(checks.check_daphne_order()) == ["gqlchannels.W009"]


def test_route_whose_consumer_class_schema_does_not_import_is_e012():
    with override_settings(ASGI_APPLICATION="tests.asgi_apps.broken_schema"):
        messages = checks.check_route_schemas()
    assert ids(messages) == ["gqlchannels.E012"]
    assert "BrokenSchemaConsumer at 'websocket x/'" in messages[0].msg


@override_settings(ASGI_APPLICATION="tests.asgi_apps.settings_schema", GQLCHANNELS={})
def test_route_without_any_schema_is_e013():
    assert ids(checks.check_route_schemas()) == ["gqlchannels.E013"]


@override_settings(
    ASGI_APPLICATION="tests.asgi_apps.settings_schema",
    GQLCHANNELS={"SCHEMA": "tests.schema.schema"},
)
def test_route_taking_its_schema_from_the_setting_passes():
    assert checks.check_route_schemas() == []


@override_settings(ASGI_APPLICATION="tests.asgi_apps.settings_schema", GQLCHANNELS={})
def test_route_schema_checks_are_registered_with_django():
    from django.core.checks import run_checks

    assert "gqlchannels.E013" in ids(run_checks())


@override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}})
def test_in_memory_channel_layer_is_w010_for_deploy():
    assert ids(checks.check_in_memory_layer_deployed()) == ["gqlchannels.W010"]


@override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "channels_redis.core.RedisChannelLayer"}})
def test_redis_channel_layer_passes_the_deploy_check():
    assert checks.check_in_memory_layer_deployed() == []


@override_settings(ASGI_APPLICATION="tests.asgi_apps.unvalidated")
def test_route_without_an_origin_validator_is_w011_for_deploy():
    messages = checks.check_origin_validation_deployed()
    assert ids(messages) == ["gqlchannels.W011"]
    assert "'websocket graphql/'" in messages[0].msg


@pytest.mark.parametrize("application", ["validated", "nested", "custom_validators"])
def test_routes_behind_an_origin_validator_pass_the_deploy_check(application):
    with override_settings(ASGI_APPLICATION=f"tests.asgi_apps.{application}"):
        assert checks.check_origin_validation_deployed() == []


def test_deploy_checks_run_only_with_deploy():
    from django.core.checks.registry import registry

    deploy_only = set(registry.get_checks(include_deployment_checks=True)) - set(
        registry.get_checks()
    )
    assert {
        checks.check_in_memory_layer_deployed,
        checks.check_origin_validation_deployed,
        checks.check_debug_errors_deployed,
    } <= deploy_only


def test_route_walk_finds_nested_routes_with_their_full_path():
    routes = list(consumer_routes(asgi_apps.nested))
    assert [(route.where, route.origin_validated) for route in routes] == [
        ("websocket api/graphql/", True)
    ]


def test_route_walk_lists_every_route_of_a_router_in_order():
    routes = list(consumer_routes(asgi_apps.custom_validators))
    assert [route.where for route in routes] == ["websocket a/", "websocket b/"]
