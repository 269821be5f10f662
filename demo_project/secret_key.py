"""The demo's ``SECRET_KEY``: never in the repository, made on first run and kept in a file.

Anyone who knows the key can sign a login token for any user (``chat.tokens``) and forge
sessions, so a key shipped in the code would be everyone's key. The file is created once,
readable only by its owner, and ignored by git; every process started from the same
checkout reads the same key, so tokens and sessions survive restarts and cross processes.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def load_or_create(path: Path) -> str:
    """The key stored at ``path``; a new random one, written there first, when there is none.

    Processes that start together (several daphne workers) agree on one key: the new key is
    written in full to a file of its own, then linked into place, which fails for all but the
    first process; the others read the winner's key.
    """
    if not path.exists():
        draft = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(50))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()
