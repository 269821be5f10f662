"""A model instance's fields as plain JSON data, for the events of ``publish_changes``.

Channel-layer payloads carry only plain types, and subscribers read the event as JSON, so
each value is turned into what JSON can say: datetimes, dates and times as ISO 8601 strings,
durations as ISO 8601 durations, Decimals and UUIDs as strings, a foreign key as its id,
JSON fields as they are. A field of any other type is written the way Django's serializers
write it (``Field.value_to_string``).
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Mapping
from typing import Any

from django.db.models import Field, Model
from django.utils.duration import duration_iso_string
from django.utils.functional import Promise

_NATIVE = (str, int, float, bool, type(None))


def plain(value: Any) -> Any:
    """``value`` as plain JSON data; TypeError for a value that has no plain form."""
    if isinstance(value, _NATIVE):
        return value
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return duration_iso_string(value)
    if isinstance(value, decimal.Decimal | uuid.UUID | Promise):
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(item) for item in value]
    raise TypeError(f"{type(value).__name__} is not plain data: {value!r}")


def field_value(instance: Model, field: Field[Any, Any]) -> Any:
    """``field``'s value on ``instance`` as plain data (a foreign key: the related id)."""
    value = field.value_from_object(instance)
    try:
        return plain(value)
    except TypeError:
        return field.value_to_string(instance)


def fields_data(instance: Model, fields: tuple[Field[Any, Any], ...]) -> dict[str, Any]:
    """``{field name: plain value}`` of ``fields`` on ``instance``."""
    return {field.name: field_value(instance, field) for field in fields}
