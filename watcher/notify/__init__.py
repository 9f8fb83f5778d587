"""The notify wing: Slack notices queued, routed, de-duplicated and delivered."""
