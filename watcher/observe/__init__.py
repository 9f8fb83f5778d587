"""The observing wing: poll Argo CD and git, detect, record, publish (one thread per job)."""
