"""The demo's settings are safe on a network: no secret key from the repository, no DEBUG
unless asked for."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from demo_project.secret_key import load_or_create

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def demo_settings(monkeypatch: pytest.MonkeyPatch, **environment: str) -> dict[str, Any]:
    """The demo's settings module run afresh in an environment without any DJANGO_* variable
    but ``environment``."""
    for name in ("DJANGO_SECRET_KEY", "DJANGO_SECRET_KEY_FILE", "DJANGO_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(PROJECT_ROOT / "demo_project" / "settings.py"))


def test_two_fresh_checkouts_get_different_secret_keys(monkeypatch, tmp_path):
    first = demo_settings(monkeypatch, DJANGO_SECRET_KEY_FILE=str(tmp_path / "one"))
    second = demo_settings(monkeypatch, DJANGO_SECRET_KEY_FILE=str(tmp_path / "two"))
    assert first["SECRET_KEY"] != second["SECRET_KEY"]


def test_the_generated_secret_key_is_kept_across_restarts(monkeypatch, tmp_path):
    key_file = str(tmp_path / "key")
    first = demo_settings(monkeypatch, DJANGO_SECRET_KEY_FILE=key_file)
    assert (
        demo_settings(monkeypatch, DJANGO_SECRET_KEY_FILE=key_file)["SECRET_KEY"]
        == (first["SECRET_KEY"])
    )


def test_the_generated_secret_key_is_long_and_readable_only_by_its_owner(tmp_path):
    key = load_or_create(tmp_path / "key")
    assert len(key) >= 50
    assert (tmp_path / "key").stat().st_mode & 0o077 == 0


def test_workers_starting_together_agree_on_one_key(tmp_path):
    # Several daphne workers of a fresh checkout may all find no key file and make one.
    script = (
        "import sys; from pathlib import Path; from demo_project.secret_key import load_or_create;"
        "print(load_or_create(Path(sys.argv[1])))"
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path / "key")],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    keys = {worker.communicate(timeout=30)[0].strip() for worker in workers}
    assert keys == {(tmp_path / "key").read_text()}
    assert [path.name for path in tmp_path.iterdir()] == ["key"]  # no draft left behind


def test_the_secret_key_from_the_environment_wins(monkeypatch, tmp_path):
    settings = demo_settings(
        monkeypatch, DJANGO_SECRET_KEY="from-the-environment", DJANGO_SECRET_KEY_FILE=str(tmp_path)
    )
    assert settings["SECRET_KEY"] == "from-the-environment"


def test_the_default_key_file_is_ignored_by_git():
    result = subprocess.run(
        ["git", "check-ignore", "--quiet", ".demo-secret-key"], cwd=PROJECT_ROOT, check=False
    )
    assert result.returncode == 0


def test_debug_is_off_by_default(monkeypatch, tmp_path):
    settings = demo_settings(monkeypatch, DJANGO_SECRET_KEY_FILE=str(tmp_path / "key"))
    assert settings["DEBUG"] is False


def test_debug_is_on_when_asked_for(monkeypatch, tmp_path):
    settings = demo_settings(
        monkeypatch, DJANGO_SECRET_KEY_FILE=str(tmp_path / "key"), DJANGO_DEBUG="1"
    )
    assert settings["DEBUG"] is True


def test_without_redis_the_demo_uses_the_in_memory_layer(monkeypatch, tmp_path):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("REDIS_URLS", raising=False)
    layers = demo_settings(monkeypatch, DJANGO_SECRET_KEY_FILE=str(tmp_path / "key"))[
        "CHANNEL_LAYERS"
    ]
    assert layers["default"]["BACKEND"] == "channels.layers.InMemoryChannelLayer"


def test_redis_urls_shards_the_demo_layer_over_every_server_listed(monkeypatch, tmp_path):
    monkeypatch.delenv("REDIS_URL", raising=False)
    layers = demo_settings(
        monkeypatch,
        DJANGO_SECRET_KEY_FILE=str(tmp_path / "key"),
        REDIS_URLS="redis://127.0.0.1:7001/0, redis://127.0.0.1:7002/0",
    )["CHANNEL_LAYERS"]
    assert layers["default"]["BACKEND"] == "channels_redis.core.RedisChannelLayer"
    hosts = [host["address"] for host in layers["default"]["CONFIG"]["hosts"]]
    assert hosts == ["redis://127.0.0.1:7001/0", "redis://127.0.0.1:7002/0"]


def test_the_pubsub_switch_gives_the_demo_channels_redis_pubsub_layer(monkeypatch, tmp_path):
    layers = demo_settings(
        monkeypatch,
        DJANGO_SECRET_KEY_FILE=str(tmp_path / "key"),
        REDIS_URL="redis://127.0.0.1:7001/0",
        GQLCHANNELS_REDIS_LAYER="pubsub",
    )["CHANNEL_LAYERS"]
    assert layers["default"]["BACKEND"] == "channels_redis.pubsub.RedisPubSubChannelLayer"
