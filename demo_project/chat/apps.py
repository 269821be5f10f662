"""The demo chat app."""

from django.apps import AppConfig


class ChatConfig(AppConfig):
    """Rooms and messages, served over GraphQL subscriptions."""

    name = "demo_project.chat"
    label = "chat"
    default_auto_field = "django.db.models.BigAutoField"
