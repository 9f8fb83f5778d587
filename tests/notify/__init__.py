"""The notify wing: Slack notices, on a fake Slack that checks Block Kit."""
