"""What of a client's operation may be stored: variables without secrets, text without NULs,
and neither longer than the registry's caps.

The registry keeps each running operation's variables for the admin's detail page, where
staff would otherwise read passwords and tokens that clients send as variables. Values under
secret-looking keys are replaced, at any depth, before anything is written. Documents and
variables are chosen by clients and can be as large as a frame (50 subscriptions of 900 KB
were 45 MB of rows), so each is cut to a number of bytes, between two characters, and ends
with ``CUT_MARKER`` when it was cut.
"""

from __future__ import annotations

from typing import Any

from .json import dumps

REDACTED = "[redacted]"
TRUNCATED = "[truncated]"
#: Appended to a stored document or variables text that was cut to its cap.
CUT_MARKER = "\n[truncated]"
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


def cut_text(text: str, max_bytes: int) -> str:
    """``text`` when its UTF-8 form fits in ``max_bytes``; else the longest prefix that fits
    with ``CUT_MARKER`` after it, cut between characters (never inside one)."""
    if len(text) <= max_bytes // 4:  # even four bytes per character would fit
        return text
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) <= max_bytes:
        return text
    room = max(0, max_bytes - len(CUT_MARKER))
    return encoded[:room].decode("utf-8", "ignore") + CUT_MARKER


def is_cut(text: object) -> bool:
    """Whether a stored document or variables value was cut by ``cut_text``."""
    return isinstance(text, str) and text.endswith(CUT_MARKER)


def stored_document(document: str, max_bytes: int) -> str:
    """The document as the registry stores it: without NULs, at most ``max_bytes``."""
    return cut_text(clean_text(document), max_bytes)


def stored_variables(variables: Any, max_bytes: int) -> Any:
    """The variables as the registry stores them: redacted, and when their JSON text is
    longer than ``max_bytes``, that text cut (a string, where variables are an object)."""
    redacted = redact_variables(variables)
    if redacted is None:
        return None
    cut = cut_text(dumps(redacted), max_bytes)
    return cut if is_cut(cut) else redacted  # JSON text ends with "}" unless it was cut
