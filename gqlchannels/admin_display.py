"""How the registry's admin pages word values: ages a person reads at a glance, and long
values shortened so that each change list fits a 1280 px window."""

from __future__ import annotations

from datetime import datetime

from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timesince import timesince

#: Characters of a value shown in a change list cell; the whole value is its tooltip.
CELL_CHARACTERS = 32


def age(since: datetime | None, now: datetime) -> str:
    """How long ago ``since`` was: "42 seconds" under a minute (``timesince`` would say
    "0 minutes", which reads as nothing at all), else ``timesince``'s "3 minutes"; "-"
    for never."""
    if since is None:
        return "-"
    seconds = int((now - since).total_seconds())
    if seconds < 60:
        seconds = max(seconds, 0)
        return f"{seconds} second{'' if seconds == 1 else 's'}"
    return timesince(since, now)


def cell(text: str, limit: int = CELL_CHARACTERS) -> str | SafeString:
    """``text`` for a change list cell: as it is when short, else its first ``limit``
    characters and an ellipsis, the whole of it in the tooltip."""
    if len(text) <= limit:
        return text
    return format_html('<span title="{}">{}…</span>', text, text[: limit - 1])
