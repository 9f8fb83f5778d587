"""Which Slack transport the settings ask for: a bot token (threads, edits) or incoming webhooks. Built here, in
the composition root, and handed to the notifier behind ports.SlackTransport."""

from __future__ import annotations

from watcher.adapters.slack import BotTransport, WebhookTransport
from watcher.ports import SlackTransport
from watcher.settings import Settings


def transport_for(settings: Settings) -> SlackTransport | None:
    s = settings.slack
    if s.bot_token is not None:
        return BotTransport(s.bot_token.get_secret_value(), s.api_url, s.timeout_seconds, s.retries)
    if s.webhook_url is not None or s.webhook_urls:
        urls = {k: v.get_secret_value() for k, v in s.webhook_urls.items()}
        default = s.webhook_url.get_secret_value() if s.webhook_url else None
        return WebhookTransport(default, urls, s.timeout_seconds, s.retries)
    return None
