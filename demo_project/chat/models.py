"""Chat rooms and the messages posted in them."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

ROOM_NAME_MAX_LENGTH = 50
ROOM_NAME_PATTERN = r"\A[A-Za-z0-9_-]+\Z"
MESSAGE_MAX_LENGTH = 2000


class Room(models.Model):
    """A named place to talk; the name is also the broadcast topic (``room:<name>``), so it
    is kept to characters that read well in URLs, topics and group names."""

    name = models.CharField(
        max_length=ROOM_NAME_MAX_LENGTH,
        unique=True,
        validators=[RegexValidator(ROOM_NAME_PATTERN, "Letters, digits, _ and - only.")],
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Message(models.Model):
    """One line of chat; ``author`` is empty for anonymous visitors (the demo lets them post)."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="chat_messages",
    )
    text = models.TextField(max_length=MESSAGE_MAX_LENGTH)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        who = self.author.get_username() if self.author else "anonymous"
        return f"{who} in {self.room}: {self.text[:40]}"
