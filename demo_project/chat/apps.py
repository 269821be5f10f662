"""The demo chat app."""

from django.apps import AppConfig


class ChatConfig(AppConfig):
    """Rooms and messages, served over GraphQL subscriptions."""

    name = "demo_project.chat"
    label = "chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Publish each message's changes to its room once they are committed, whoever
        makes them (the ``postMessage`` mutation, the admin, a script)."""
        import gqlchannels

        from .models import Message
        from .schema import message_payload, message_topic

        gqlchannels.publish_changes(Message, topic=message_topic, serialize=message_payload)
