"""structlog setup: JSON off a terminal, pretty on one, secrets scrubbed from every event."""

from __future__ import annotations

import logging
import re
import sys
import threading
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


# Libraries log through the standard library: GitPython the git commands it runs, httpx the requests it sends,
# uvicorn its server. Their lines come out with the daemon's, in the same format and scrubbed the same way: all of
# them at debug, otherwise only warnings and errors. These stay quieter even at debug:
QUIET_LIBRARIES = {
    # "skipped: maximum number of running instances" whenever a poll outlasts its interval, and a line per job run:
    # expected under load (coalescing is the point), so only its errors are worth a line.
    "apscheduler": logging.ERROR,
    "httpcore": logging.INFO,  # every socket step of every request
}


class _LibraryHandler(logging.StreamHandler):
    """The root logger's handler for library lines; a class of its own so that configuring again replaces it."""


def configure(level: str = "info", fmt: str = "auto", secrets: Iterable[str] = (), stream: Any = None) -> None:
    REDACTOR.add(secrets)
    out = stream or sys.stderr
    json_out = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: Any = structlog.processors.JSONRenderer() if json_out else structlog.dev.ConsoleRenderer(colors=False)
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
    threshold = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            stamp,
            structlog.processors.format_exc_info,
            REDACTOR,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        # One write per line, so that lines from the library handler below never land inside one of ours.
        logger_factory=structlog.WriteLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    handler = _LibraryHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, structlog.processors.add_log_level, stamp],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                REDACTOR,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _LibraryHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(threshold if threshold <= logging.DEBUG else max(threshold, logging.WARNING))
    for name, quiet in QUIET_LIBRARIES.items():
        logging.getLogger(name).setLevel(quiet)
    threading.excepthook = _thread_crashed


def _thread_crashed(args: threading.ExceptHookArgs) -> None:
    """An exception no one caught on a worker thread: one JSON line, scrubbed, instead of a bare traceback."""
    if args.exc_type is SystemExit:
        return
    get_logger().error(
        "thread_crashed",
        thread=args.thread.name if args.thread else None,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


def get_logger(**context: Any) -> Any:
    return structlog.get_logger("sync-watcher").bind(**context)
