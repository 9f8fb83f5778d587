"""Prometheus exposition: event counters and the per-app series computed from state at scrape time."""
