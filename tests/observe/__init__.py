"""The observe wing: list reads, the fleet map, the rollout watch, on fakes of the ports."""
