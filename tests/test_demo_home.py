"""The demo's home page: where the playground and the admin are, and how to log a client in."""

from __future__ import annotations

from django.test import Client


def test_the_home_page_links_to_the_playground_and_the_admin():
    response = Client().get("/")
    assert response.status_code == 200
    page = response.content.decode()
    assert 'href="/graphql/"' in page
    assert 'href="/admin/"' in page


def test_the_home_page_names_the_schema_and_the_chat_token_command():
    page = Client().get("/").content.decode()
    for name in ("messageAdded", "postMessage", "manage.py chat_token"):
        assert name in page
