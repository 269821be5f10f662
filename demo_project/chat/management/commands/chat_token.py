"""``manage.py chat_token USERNAME``: print a login token for the demo's WebSocket clients."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from demo_project.chat.tokens import TOKEN_MAX_AGE, make_token


class Command(BaseCommand):
    """Print a token to send as ``{"token": ...}`` in ``connection_init``.

    Scripts and command-line clients have no session cookie; this gives them a way to post
    as a user without a login page. ``--create`` makes the user first, for quick trials.
    """

    help = (
        "Print a chat login token for USERNAME (valid for "
        f"{TOKEN_MAX_AGE // 3600} hours), to send as connection_init's 'token'."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """USERNAME, and ``--create`` to make that user when it does not exist."""
        parser.add_argument("username", help="The user the token logs in as.")
        parser.add_argument(
            "--create",
            action="store_true",
            help="Create the user (without a usable password) if it does not exist.",
        )

    def handle(self, *args: Any, username: str, create: bool, **options: Any) -> None:
        """Look the user up (or create it), then print its token on stdout alone."""
        user_model = get_user_model()
        lookup = {user_model.USERNAME_FIELD: username}
        try:
            user = user_model._default_manager.get(**lookup)
        except user_model.DoesNotExist:
            if not create:
                raise CommandError(f"No user {username!r}; pass --create to create it.") from None
            user = user_model._default_manager.create_user(**lookup)
            self.stderr.write(f"Created user {username!r}.")
        if not user.is_active:
            raise CommandError(f"User {username!r} is inactive; its tokens would be refused.")
        self.stdout.write(make_token(user))
