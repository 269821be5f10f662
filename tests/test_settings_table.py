"""The settings table: every setting declared once reaches the place that uses it, and the
README lists exactly the settings of the table."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.test import override_settings

from gqlchannels import conf
from gqlchannels.consumers import GraphQLWSConsumer
from gqlchannels.execution import Executor
from gqlchannels.protocols import ProtocolOptions
from tests.helpers import open_socket
from tests.schema import schema

if TYPE_CHECKING:
    from asgiref.typing import WebSocketConnectEvent

README = Path(__file__).resolve().parent.parent / "README.md"

#: Where a connection uses each per-route option that its protocol does not hold.
CONSUMER_USES = {
    "protocols": lambda consumer: consumer.option("protocols"),
    "max_message_bytes": lambda consumer: consumer.option("max_message_bytes"),
    "max_frame_depth": lambda consumer: consumer.option("max_frame_depth"),
    "max_outbound_buffer_bytes": lambda consumer: consumer.socket.budget,
}
PROTOCOL_OPTIONS = {field.name for field in fields(ProtocolOptions)}


class Recording(GraphQLWSConsumer):
    """Keeps every consumer that opened, to look at what it runs with."""

    opened: list[GraphQLWSConsumer] = []

    async def websocket_connect(self, message: WebSocketConnectEvent) -> None:
        await super().websocket_connect(message)
        Recording.opened.append(self)


def value_in_use(consumer: GraphQLWSConsumer, option: str) -> Any:
    if option in PROTOCOL_OPTIONS:
        assert consumer.protocol is not None
        return getattr(consumer.protocol.options, option)
    return CONSUMER_USES[option](consumer)


def two_other_values(option: str) -> tuple[Any, Any]:
    """Two valid values of ``option``, both different from its default and each other."""
    default = conf.TABLE[option.upper()].default
    if option == "protocols":
        return ("graphql-ws", "graphql-transport-ws"), ("graphql-transport-ws",)
    return default + 1, default + 2


def test_every_per_route_option_is_used_by_the_protocol_or_the_consumer():
    assert PROTOCOL_OPTIONS.isdisjoint(CONSUMER_USES)
    assert PROTOCOL_OPTIONS | set(CONSUMER_USES) == set(conf.CONSUMER_OPTIONS)


def test_protocol_options_default_to_the_table():
    defaults = ProtocolOptions()
    for option in PROTOCOL_OPTIONS:
        assert getattr(defaults, option) == conf.TABLE[option.upper()].default


@pytest.mark.parametrize("option", conf.CONSUMER_OPTIONS)
async def test_an_as_asgi_option_wins_over_its_setting(option):
    setting, given = two_other_values(option)
    Recording.opened.clear()
    with override_settings(GQLCHANNELS={option.upper(): setting}):
        communicator = await open_socket(consumer=Recording, **{option: given})
        try:
            assert value_in_use(Recording.opened[0], option) == given
        finally:
            await communicator.disconnect()


@pytest.mark.parametrize("option", conf.CONSUMER_OPTIONS)
async def test_an_option_not_given_to_as_asgi_comes_from_its_setting(option):
    setting, _ = two_other_values(option)
    Recording.opened.clear()
    with override_settings(GQLCHANNELS={option.upper(): setting}):
        communicator = await open_socket(consumer=Recording)
        try:
            assert value_in_use(Recording.opened[0], option) == setting
        finally:
            await communicator.disconnect()


def test_an_executor_takes_each_setting_read_per_schema():
    settings = {
        "MAX_DOCUMENT_TOKENS": None,
        "MAX_VALIDATION_ERRORS": 7,
        "DOCUMENT_CACHE_SIZE": 3,
        "DOCUMENT_CACHE_BYTES": 4096,
        "SYNC_RESOLVERS": "inline",
        "COMPILED_EXECUTION": False,
        "MAX_QUERY_DEPTH": None,
        "MAX_ALIASES": None,
        "MAX_QUERY_COST": None,
        "VALIDATION_RULES": ["tests.validation_rules.NoNodesRule"],
    }
    assert set(settings) == {s.name for s in conf.SETTINGS if s.read is conf.Read.SCHEMA}
    with override_settings(GQLCHANNELS=settings):
        executor = Executor(schema)
    assert executor.max_tokens is None
    assert executor.max_validation_errors == 7
    assert (executor.cache.max_entries, executor.cache.max_bytes) == (3, 4096)
    assert executor.offload_sync is False
    assert executor.compiled is None
    added = [rule.__name__ for rule in executor.validation_rules[-1:]]
    assert added == ["NoNodesRule"]


def readme_settings() -> dict[str, bool]:
    """Each setting the README's settings tables list, and whether it is marked *option*."""
    listed: dict[str, bool] = {}
    in_table = False
    for line in README.read_text().splitlines():
        if line.startswith("| setting | default | meaning |"):
            in_table = True
        elif not line.startswith("|"):
            in_table = False
        elif in_table and (row := re.match(r"\| `(\w+)`( \*option\*)? \|", line)):
            listed[row[1]] = bool(row[2])
    return listed


def test_the_readme_lists_every_setting_of_the_table_and_nothing_else():
    assert sorted(readme_settings()) == sorted(conf.DEFAULTS)


def test_the_readme_marks_exactly_the_per_route_options():
    marked = {name for name, option in readme_settings().items() if option}
    assert marked == {setting.name for setting in conf.SETTINGS if setting.route}
