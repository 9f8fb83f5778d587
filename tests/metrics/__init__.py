"""What /metrics exposes, checked with promtool and a real Prometheus."""
