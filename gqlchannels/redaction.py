"""What of a client's operation may be stored: variables without secrets, text without NULs.

The registry keeps each running operation's variables for the admin's detail page, where
staff would otherwise read passwords and tokens that clients send as variables. Values under
secret-looking keys are replaced, at any depth, before anything is written.
"""

from __future__ import annotations

from typing import Any

REDACTED = "[redacted]"
TRUNCATED = "[truncated]"
#: Parts of a key (lower case, without ``_`` and ``-``) that mark its value as secret.
#: Deliberately broad: hiding a harmless value costs little, showing a secret costs a lot.
SECRET_KEY_PARTS = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "key",
    "authorization",
    "credential",
    "cookie",
    "session",
    "signature",
    "private",
)
#: Nesting below this depth is cut off (decoded JSON may be ~1,000 levels deep).
MAX_DEPTH = 32


def is_secret_key(key: object) -> bool:
    """Whether a value stored under ``key`` looks like a secret (case-insensitive)."""
    normalised = str(key).lower().replace("_", "").replace("-", "")
    return any(part in normalised for part in SECRET_KEY_PARTS)


def redact_variables(variables: Any) -> Any:
    """``variables`` with every value under a secret-looking key replaced by ``[redacted]``
    (in nested objects and lists too), ready to store as JSON."""
    return _redact(variables, 0)


def _redact(value: Any, depth: int) -> Any:
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            return TRUNCATED
        return {
            clean_text(str(key)): REDACTED if is_secret_key(key) else _redact(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        if depth >= MAX_DEPTH:
            return TRUNCATED
        return [_redact(item, depth + 1) for item in value]
    if isinstance(value, str):
        return clean_text(value)
    return value


def clean_text(text: str) -> str:
    """``text`` without NUL characters, which PostgreSQL refuses in text and JSON."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text
