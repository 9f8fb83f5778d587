"""structlog setup: JSON off a terminal, pretty on one, secrets scrubbed from every event."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

from watcher.settings import without_credentials

REDACTED = "***"
SECRET_KEYS = re.compile(r"(token|password|secret|authorization|webhook|api_key|private_key)", re.IGNORECASE)
# Bearer headers, whatever the key is called (credentials in URLs: settings.without_credentials).
BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


class SecretRedactor:
    """A structlog processor: drops values of secret-named keys and any known secret value anywhere."""

    def __init__(self, secrets: Iterable[str] = ()):
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def add(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted(set(self.secrets) | {s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self.secrets:
                value = value.replace(secret, REDACTED)
            value = without_credentials(value)
            return BEARER.sub(rf"\g<1>{REDACTED}", value)
        if isinstance(value, dict):
            return {k: REDACTED if _secret_key(k, v) else self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.scrub(v) for v in value)
        if isinstance(value, BaseException):
            return self.scrub(str(value))
        return value

    def __call__(self, _logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for key, value in list(event.items()):
            event[key] = REDACTED if _secret_key(key, value) else self.scrub(value)
        return event


def _secret_key(key: object, value: object) -> bool:
    return isinstance(key, str) and bool(SECRET_KEYS.search(key)) and value not in (None, "", False)


REDACTOR = SecretRedactor()


def configure(level: str = "info", fmt: str = "auto", secrets: Iterable[str] = (), stream: Any = None) -> None:
    REDACTOR.add(secrets)
    # APScheduler says "skipped: maximum number of running instances" whenever a poll outlasts its
    # interval: expected under load (coalescing is the point), so only its errors are worth a line.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    out = stream or sys.stderr
    json_out = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: Any = structlog.processors.JSONRenderer() if json_out else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            REDACTOR,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )


def get_logger(**context: Any) -> Any:
    return structlog.get_logger("sync-watcher").bind(**context)
