"""``manage.py gqlchannels_broadcast TOPIC JSON``: publish one event, for operators and cron."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gqlchannels.broadcast import broadcast_sync, group_name
from gqlchannels.exceptions import BroadcastError


class Command(BaseCommand):
    """Publishes a JSON payload to every subscription listening to a topic, in every process
    that shares the channel layer."""

    help = "Publish a JSON payload to a gqlchannels topic through the channel layer."

    def add_arguments(self, parser: CommandParser) -> None:
        """TOPIC, the JSON payload, and ``--json`` for a machine-readable report."""
        parser.add_argument("topic", help="the topic, e.g. room:42")
        parser.add_argument("payload", help='the event as JSON, e.g. \'{"text": "hi"}\'')
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        """Decode, publish, report; a bad payload or an unreachable layer is a CommandError."""
        try:
            payload = json.loads(options["payload"])
        except ValueError as exc:
            raise CommandError(f"The payload is not valid JSON: {exc}") from None
        topic = options["topic"]
        try:
            broadcast_sync(topic, payload)
        except (BroadcastError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        if options["json"]:
            self.stdout.write(
                json.dumps({"topic": topic, "group": group_name(topic), "sent": True})
            )
        else:
            self.stdout.write(f"Published to {topic} ({group_name(topic)})")
