"""The revert wing: read once, decide (core), act from one table, verify."""
