"""The playground view, through Django's test client on the demo's ``graphql/`` route: who
gets it (DEBUG, staff, ``GQLCHANNELS['PLAYGROUND']``), its security headers, its files."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.test import Client, RequestFactory

from gqlchannels.playground.access import playground_allowed
from gqlchannels.playground.views import ASSETS

PAGE = "/graphql/"


@pytest.fixture(autouse=True)
def fast_passwords(settings: Any) -> None:
    """Users made here get passwords: hash them cheaply."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def logged_in(is_staff: bool, is_superuser: bool = False) -> Client:
    """A test client logged in as a new active user, staff or not."""
    user = get_user_model().objects.create_user(
        "visitor", is_staff=is_staff, is_superuser=is_superuser
    )
    client = Client()
    client.force_login(user)
    return client


def request_from(user: Any) -> Any:
    """A GET of the page made by ``user`` (as AuthenticationMiddleware would set it)."""
    request = RequestFactory().get(PAGE)
    request.user = user
    return request


class Tags(HTMLParser):
    """Every start tag of a page, with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def start_tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    """The start tags of ``html``, in order."""
    parser = Tags()
    parser.feed(html)
    return parser.tags


def directives(policy: str) -> dict[str, list[str]]:
    """A Content-Security-Policy header as {directive: sources}."""
    parsed: dict[str, list[str]] = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        parsed[name] = sources
    return parsed


# -- access --------------------------------------------------------------------------------


def test_debug_on_shows_the_page_to_anonymous_visitors(settings):
    settings.DEBUG = True
    assert Client().get(PAGE).status_code == 200


def test_debug_off_hides_the_page_from_anonymous_visitors(settings):
    settings.DEBUG = False
    assert Client().get(PAGE).status_code == 404


def test_debug_off_shows_the_page_to_active_staff(settings):
    settings.DEBUG = False
    assert logged_in(is_staff=True).get(PAGE).status_code == 200


def test_debug_off_hides_the_page_from_users_who_are_not_staff(settings):
    settings.DEBUG = False
    assert logged_in(is_staff=False).get(PAGE).status_code == 404


def test_debug_off_refuses_inactive_staff(settings):
    settings.DEBUG = False
    user = get_user_model().objects.create_user("former", is_staff=True, is_active=False)
    assert playground_allowed(request_from(user)) is False


def test_debug_off_refuses_a_request_without_a_user(settings):
    settings.DEBUG = False
    assert playground_allowed(RequestFactory().get(PAGE)) is False


def test_setting_true_shows_the_page_to_anonymous_visitors(settings):
    settings.DEBUG = False
    settings.GQLCHANNELS = {"PLAYGROUND": True}
    assert Client().get(PAGE).status_code == 200


def test_setting_false_hides_the_page_even_from_staff_with_debug_on(settings):
    settings.DEBUG = True
    settings.GQLCHANNELS = {"PLAYGROUND": False}
    assert logged_in(is_staff=True, is_superuser=True).get(PAGE).status_code == 404


@pytest.mark.parametrize("value", ["true", 1, "yes"])
def test_a_setting_of_another_kind_hides_the_page(settings, value):
    settings.DEBUG = True
    settings.GQLCHANNELS = {"PLAYGROUND": value}
    assert playground_allowed(request_from(AnonymousUser())) is False


def test_a_hidden_page_hides_its_files_too(settings):
    settings.DEBUG = False
    assert Client().get(PAGE, {"asset": "playground.js"}).status_code == 404


def test_only_get_and_head_are_allowed(settings):
    settings.DEBUG = True
    assert Client().post(PAGE).status_code == 405


# -- security headers and markup -----------------------------------------------------------


def test_the_page_allows_scripts_and_styles_from_its_own_origin_only(settings):
    settings.DEBUG = True
    policy = directives(Client().get(PAGE).headers["Content-Security-Policy"])
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]


def test_the_page_may_open_sockets_to_its_own_host_only(settings):
    settings.DEBUG = True
    policy = directives(Client().get(PAGE).headers["Content-Security-Policy"])
    assert policy["connect-src"] == ["'self'", "ws://testserver", "wss://testserver"]


def test_the_page_cannot_be_framed(settings):
    settings.DEBUG = True
    response = Client().get(PAGE)
    assert response.headers["X-Frame-Options"] == "DENY"
    assert directives(response.headers["Content-Security-Policy"])["frame-ancestors"] == ["'none'"]


def test_the_page_is_never_cached(settings):
    settings.DEBUG = True
    assert "no-store" in Client().get(PAGE).headers["Cache-Control"]


def test_the_page_has_no_inline_script_or_style(settings):
    settings.DEBUG = True
    html = Client().get(PAGE).content.decode()
    tags = start_tags(html)
    scripts = [attrs for tag, attrs in tags if tag == "script"]
    assert scripts and all(attrs.get("src") for attrs in scripts)
    assert "style" not in [tag for tag, _ in tags]
    inline = [(tag, name) for tag, attrs in tags for name in attrs if name == "style"]
    handlers = [(tag, name) for tag, attrs in tags for name in attrs if name.startswith("on")]
    assert inline == handlers == []


def test_the_page_loads_its_files_from_its_own_url(settings):
    settings.DEBUG = True
    tags = start_tags(Client().get(PAGE).content.decode())
    loaded = [attrs for tag, attrs in tags if tag in ("script", "link")]
    urls = {attrs.get("src") or attrs.get("href") for attrs in loaded}
    assert urls == {f"{PAGE}?asset=playground.js", f"{PAGE}?asset=playground.css"}


# -- the page's files ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ASSETS))
def test_each_file_is_served_with_its_content_type(settings, name):
    settings.DEBUG = True
    response = Client().get(PAGE, {"asset": name})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == ASSETS[name]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.content


@pytest.mark.parametrize("name", ["../views.py", "playground.html", "", "PLAYGROUND.JS"])
def test_a_file_the_page_does_not_use_is_not_found(settings, name):
    settings.DEBUG = True
    assert Client().get(PAGE, {"asset": name}).status_code == 404
