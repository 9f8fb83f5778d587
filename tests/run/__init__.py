"""The composition root: the daemon, HTTP, settings, safety defaults."""
