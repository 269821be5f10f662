"""The README's Quick start, done as written: ``django-admin startproject mysite``, then every
file the README shows (from its ``<!-- quickstart... -->`` blocks), then real daphne and uvicorn
serving the project to ``gql`` clients that send no ``Origin``, and the README's test files run
by pytest inside the project.

The project imports this checkout's gqlchannels (``PYTHONPATH``), whatever the virtualenv has.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from gql import Client, GraphQLRequest
from gql.client import AsyncClientSession
from gql.transport.websockets import WebsocketsTransport

from tests.live_server import PROJECT_ROOT, LiveServer, running_server
from tests.readme_blocks import blocks_marked

pytestmark = pytest.mark.e2e

#: Upper bound of every wait on a server or a command, in seconds.
TIMEOUT = 15.0
#: How long one probe of ``post_until_received`` waits for its message.
PROBE_WAIT = 0.2
SUBPROTOCOLS = [WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL, WebsocketsTransport.APOLLO_SUBPROTOCOL]
SUBSCRIBE = "subscription Added($room: String!) { messageAdded(room: $room) { room text } }"
POST = (
    "mutation Post($room: String!, $text: String!)"
    " { postMessage(room: $room, text: $text) { text } }"
)
_rooms = itertools.count(1)


def project_environment() -> dict[str, str]:
    """The environment of the project's commands: this checkout's gqlchannels, and none of
    the demo's settings (which pytest-django put in this process's environment)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run ``command``; its output, or a failure showing all of it."""
    result = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (
        f"{command} exited {result.returncode}:\n{result.stdout}{result.stderr}"
    )
    return result.stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new ``mysite`` with the Quick start's files written and appended as the README says."""
    root = tmp_path_factory.mktemp("quickstart")
    django_admin = Path(sys.executable).parent / "django-admin"
    run([str(django_admin), "startproject", "mysite"], root, project_environment())
    site = root / "mysite"
    written = blocks_marked("quickstart")
    appended = blocks_marked("quickstart-append")
    assert {"mysite/settings.py", "mysite/asgi.py", "mysite/schema.py"} <= {*written, *appended}
    for path, block in written.items():
        (site / path).write_text(block.text)
    for path, block in appended.items():
        with (site / path).open("a") as file:
            file.write("\n" + block.text)
    return site


@pytest.fixture(scope="module", params=["daphne", "uvicorn"])
def server(
    request: pytest.FixtureRequest, project: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The project served by the README's command of each server."""
    env = {**project_environment(), "DJANGO_SETTINGS_MODULE": "mysite.settings"}
    directory = tmp_path_factory.mktemp(request.param)
    with running_server(
        directory, request.param, "mysite.asgi:application", env=env, project=project
    ) as live:
        yield live


@pytest.fixture
async def connect(server: LiveServer) -> AsyncIterator[Any]:
    """Opens gql sessions without an Origin header, as scripts do; closes them after."""
    clients: list[Client] = []

    async def open_session(subprotocol: str) -> AsyncClientSession:
        transport = WebsocketsTransport(
            url=server.ws_url,
            subprotocols=[subprotocol],
            connect_timeout=TIMEOUT,
            close_timeout=TIMEOUT,
            ack_timeout=TIMEOUT,
        )
        client = Client(transport=transport)
        clients.append(client)
        session: AsyncClientSession = await client.connect_async()
        return session

    yield open_session
    for client in clients:
        await client.close_async()


async def post_until_received(
    poster: AsyncClientSession, events: AsyncIterator[Any], room: str
) -> dict[str, Any]:
    """Post to ``room`` until the subscription behind ``events`` receives a post; that event.

    The server says nothing when a subscription has joined its topic, and what is broadcast
    before that is not delivered: so probes are posted until one arrives.
    """
    pending = asyncio.ensure_future(anext(events))
    try:
        for number in range(int(TIMEOUT / PROBE_WAIT)):
            request = GraphQLRequest(
                POST, variable_values={"room": room, "text": f"probe {number}"}
            )
            await asyncio.wait_for(poster.execute(request), TIMEOUT)
            done, _ = await asyncio.wait({pending}, timeout=PROBE_WAIT)
            if done:
                event: dict[str, Any] = pending.result()
                return event
        raise AssertionError(f"No post to {room!r} reached the subscription in {TIMEOUT} s")
    finally:
        pending.cancel()


@pytest.mark.parametrize("subprotocol", SUBPROTOCOLS)
async def test_a_client_without_origin_subscribes_and_receives_a_broadcast(
    connect: Any, subprotocol: str
) -> None:
    listener = await connect(subprotocol)
    poster = await connect(subprotocol)
    room = f"quickstart-{next(_rooms)}"
    events = listener.subscribe(GraphQLRequest(SUBSCRIBE, variable_values={"room": room}))
    event = await post_until_received(poster, events, room)
    await events.aclose()
    assert event["messageAdded"]["room"] == room
    assert event["messageAdded"]["text"].startswith("probe ")


def test_the_readme_tests_pass_in_the_project(project: Path) -> None:
    files = blocks_marked("quickstart")
    assert {"pytest.ini", "conftest.py", "test_chat.py"} <= set(files)
    output = run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_chat.py"],
        project,
        project_environment(),
    )
    assert "2 passed" in output
