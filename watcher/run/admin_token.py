"""The admin API's bearer token: the configured one, or one generated once and kept on the state volume."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from watcher.settings import Settings, SettingsError, state_dir


def token_path(settings: Settings) -> Path:
    return state_dir(settings.git) / "admin-token"


def read_token(settings: Settings) -> str | None:
    """What a client sends: WATCHER_HTTP__ADMIN_TOKEN(_FILE), else the generated file if this host can read it."""
    if settings.http.admin_token is not None:
        return settings.http.admin_token.get_secret_value()
    try:
        return token_path(settings).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def ensure_token(settings: Settings) -> tuple[str | None, bool]:
    """The token the API requires (None: waived by WATCHER_HTTP__ADMIN_AUTH=none) and whether it was just made."""
    if settings.http.admin_auth == "none":
        return None, False
    existing = read_token(settings)
    if existing:
        return existing, False
    path = token_path(settings)
    token = secrets.token_urlsafe(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # 0600 from the start: the token is never readable by anyone else, not even for an instant.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(token + "\n")
    except OSError as exc:
        raise SettingsError(
            f"WATCHER_HTTP__ADMIN_TOKEN: none set and cannot keep a generated one in {path} ({exc.strerror}); "
            "set WATCHER_HTTP__ADMIN_TOKEN_FILE or make the state volume writable"
        ) from None
    return token, True
