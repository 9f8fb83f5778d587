"""The revert wing on fakes of its ports: decisions, outcomes, crash recovery."""
