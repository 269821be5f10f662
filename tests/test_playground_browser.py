"""The playground in a real browser: the demo in a real ``daphne``, the system Chromium driven
by Playwright, a staff user logged in through the admin (the demo runs with DEBUG off).

The server pings every 0.2 s and waits 1 s for the pong, so a page that did not answer
pings would be closed (3008) long before a two-second countdown completes.

Playwright's async API, on one event loop for the module (the browser is started once):
its sync API keeps an event loop running in the test's thread, where Django then refuses
the database flush between tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from tests.browser_support import chromium_path
from tests.live_server import LiveServer, manage, running_server

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
both_protocols = pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])

#: Milliseconds any wait on the page may take.
TIMEOUT_MS = 15_000
STAFF_USERNAME = "playground-staff"
STAFF_PASSWORD = "a-password-for-the-browser-tests"
COUNTDOWN = "subscription { countdown(from: 2) }"
TIME = re.compile(r"^\d\d:\d\d:\d\d\.\d{3}$")
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module", params=["daphne", "uvicorn"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The demo in daphne, then in uvicorn, with frequent pings and a short pong timeout, and
    a staff user."""
    directory: Path = tmp_path_factory.mktemp(f"playground-{request.param}")
    env = {"GQLCHANNELS_KEEPALIVE_INTERVAL": "0.2", "GQLCHANNELS_PONG_TIMEOUT": "1"}
    with running_server(directory, request.param, env=env) as live:
        manage(
            {**live.env, "DJANGO_SUPERUSER_PASSWORD": STAFF_PASSWORD},
            "createsuperuser",
            "--noinput",
            "--username",
            STAFF_USERNAME,
            "--email",
            "staff@example.com",
        )
        yield live


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Headless system Chromium (never a browser Playwright downloads)."""
    executable = chromium_path()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def staff(browser: Browser, server: LiveServer) -> AsyncIterator[BrowserContext]:
    """A browser context logged in as the staff user through the admin's login form."""
    context = await browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    await page.goto(f"{server.http_url}/admin/login/?next=/graphql/")
    await page.fill("#id_username", STAFF_USERNAME)
    await page.fill("#id_password", STAFF_PASSWORD)
    await page.click("input[type=submit]")
    await page.wait_for_url(f"{server.http_url}/graphql/")
    await page.close()
    try:
        yield context
    finally:
        await context.close()


@pytest.fixture
def page_errors() -> list[str]:
    """Console errors and uncaught exceptions of the page (CSP violations among them)."""
    return []


@pytest_asyncio.fixture(loop_scope="module")
async def playground(
    staff: BrowserContext, server: LiveServer, page_errors: list[str]
) -> AsyncIterator[Page]:
    """The playground page, loaded and its module running."""
    page = await staff.new_page()
    page.on("console", lambda m: page_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    await page.goto(f"{server.http_url}/graphql/")
    await page.wait_for_selector("body[data-ready=true]")
    try:
        yield page
    finally:
        await page.close()


async def run(page: Page, query: str, protocol: str, variables: str = "", params: str = "") -> None:
    """Type an operation and its inputs into the page and press Run."""
    await page.fill("#query", query)
    await page.select_option("#protocol", protocol)
    await page.fill("#variables", variables)
    await page.fill("#connection-params", params)
    await page.click("#run")


async def results(page: Page) -> list[object]:
    """The payload of every ``next``/``data`` entry shown, in order."""
    texts = await page.locator(".event-next pre").all_text_contents()
    return [json.loads(text) for text in texts]


async def test_the_page_runs_under_its_own_content_security_policy(playground, page_errors):
    await run(playground, COUNTDOWN, TRANSPORT_WS)
    await expect(playground.locator(".event-complete")).to_have_count(1)
    assert page_errors == []


@both_protocols
async def test_a_subscription_streams_its_events_into_the_page(playground, protocol):
    await run(playground, COUNTDOWN, protocol)
    await expect(playground.locator(".event-complete")).to_have_count(1)
    assert await results(playground) == [{"data": {"countdown": n}} for n in (2, 1, 0)]


async def test_each_event_is_shown_with_the_time_it_arrived(playground):
    await run(playground, COUNTDOWN, TRANSPORT_WS)
    await expect(playground.locator(".event-complete")).to_have_count(1)
    times = await playground.locator(".event-next time").all_text_contents()
    assert len(times) == 3
    assert all(TIME.match(time) for time in times), times


@both_protocols
async def test_keepalives_are_handled_and_the_operation_completes(playground, protocol):
    await run(playground, COUNTDOWN, protocol)
    await expect(playground.locator(".event-complete")).to_have_count(1)
    expected = "Pings answered" if protocol == TRANSPORT_WS else "Keep-alives (ka)"
    await expect(playground.locator("#keepalive")).to_contain_text(expected)
    assert await playground.locator(".event.failed").count() == 0


@both_protocols
async def test_stop_ends_a_running_subscription(playground, protocol):
    await run(playground, "subscription { countdown(from: 30) }", protocol)
    await expect(playground.locator(".event-next")).not_to_have_count(0)
    await playground.click("#stop")
    await expect(playground.locator(".event-closed")).to_contain_text("code 1000")
    assert await playground.locator(".event-stopped").count() == 1
    assert await playground.locator(".event.failed").count() == 0
    await expect(playground.locator("#run")).to_be_enabled()


async def test_a_validation_error_is_shown(playground):
    await run(playground, "query { nope }", TRANSPORT_WS)
    await expect(playground.locator(".event-error.failed")).to_contain_text(
        "Cannot query field 'nope' on type 'Query'."
    )


async def test_graphql_errors_in_a_result_are_shown_as_errors(playground):
    await run(playground, 'query { messages(room: "not a room!") { text } }', LEGACY_WS)
    await expect(playground.locator(".event-next.failed")).to_contain_text("A room name is 1 to")


@both_protocols
async def test_a_refused_connection_shows_its_close_code(playground, protocol):
    await run(playground, COUNTDOWN, protocol, params='{"token": "forged"}')
    await expect(playground.locator(".event-closed.failed")).to_contain_text("code 4403")


async def test_legacy_connection_error_is_shown(playground):
    await run(playground, COUNTDOWN, LEGACY_WS, params='{"token": "forged"}')
    await expect(playground.locator(".event-connection-error.failed")).to_have_count(1)


async def test_invalid_variables_are_shown_and_nothing_is_sent(playground):
    await run(playground, COUNTDOWN, TRANSPORT_WS, variables="{not json")
    await expect(playground.locator(".event-invalid.failed")).to_contain_text(
        "Variables are not valid JSON"
    )
    await expect(playground.locator("#variables")).to_have_attribute("aria-invalid", "true")
    assert await playground.locator(".event-sent").count() == 0
