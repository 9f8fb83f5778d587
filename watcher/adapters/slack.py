"""Slack transports over slack_sdk: incoming webhooks (default) or a bot token (threads, message updates)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry import RetryHandler
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.webhook import WebhookClient

from watcher.core.plain_text import visible, visible_all
from watcher.domain import NeedsHuman


class SlackError(NeedsHuman):
    """Slack refused or could not be reached after the retries; the message never holds a URL or token. The
    notice is dropped (counted and logged), so it is a person's to look at: NeedsHuman at the port."""


def retry_handlers(retries: int) -> list[RetryHandler]:
    """429: wait for Retry-After (slack_sdk's handler reads it); 500/503 and lost connections: back off."""
    backoff = BackoffRetryIntervalCalculator(backoff_factor=0.5)
    return [
        RateLimitErrorRetryHandler(max_retry_count=retries),
        ServerErrorRetryHandler(max_retry_count=retries, interval_calculator=backoff),
        ConnectionErrorRetryHandler(max_retry_count=retries, interval_calculator=backoff),
    ]


class WebhookTransport:
    threads = False

    def __init__(self, default_url: str | None, by_channel: Mapping[str, str], timeout: int, retries: int):
        handlers = retry_handlers(retries)
        self.clients = {
            name: WebhookClient(url, timeout=timeout, retry_handlers=handlers) for name, url in by_channel.items()
        }
        self.default = WebhookClient(default_url, timeout=timeout, retry_handlers=handlers) if default_url else None

    def post(
        self, channel: str, text: str, blocks: list[dict[str, Any]], thread_ts: str | None = None
    ) -> tuple[str, str | None]:
        client = self.clients.get(channel) or self.default
        if client is None:
            raise SlackError(f"no webhook for channel {channel!r}: set WATCHER_SLACK__WEBHOOK_URL(S)")
        try:
            r = client.send(text=visible(text), blocks=visible_all(blocks), unfurl_links=False, unfurl_media=False)
        except (SlackClientError, OSError) as exc:
            raise SlackError(
                f"webhook for {channel or 'the default channel'} unreachable: {type(exc).__name__}"
            ) from None
        if r.status_code != 200:
            raise SlackError(f"webhook for {channel or 'the default channel'} answered {r.status_code}: {r.body[:120]}")
        return channel, None

    def update(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        raise SlackError("incoming webhooks cannot update a message")


class BotTransport:
    threads = True

    def __init__(self, token: str, api_url: str, timeout: int, retries: int):
        self.client = WebClient(token=token, base_url=api_url, timeout=timeout, retry_handlers=retry_handlers(retries))

    def post(
        self, channel: str, text: str, blocks: list[dict[str, Any]], thread_ts: str | None = None
    ) -> tuple[str, str | None]:
        with _api_errors(f"chat.postMessage to {channel}"):
            r = self.client.chat_postMessage(
                channel=channel,
                text=visible(text),
                blocks=visible_all(blocks),
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
            )
        return str(r["channel"]), str(r["ts"])

    def update(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        with _api_errors(f"chat.update in {channel}"):
            self.client.chat_update(channel=channel, ts=ts, text=visible(text), blocks=visible_all(blocks))


@contextmanager
def _api_errors(call: str) -> Iterator[None]:
    """Slack's `error` code (or the exception's type) in one line; never the request, which holds the token."""
    try:
        yield
    except SlackApiError as exc:
        raise SlackError(f"{call}: {exc.response.get('error', exc.response.status_code)}") from None
    except (SlackClientError, OSError) as exc:
        raise SlackError(f"{call}: {type(exc).__name__}") from None
