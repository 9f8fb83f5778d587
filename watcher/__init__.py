"""sync-watcher: watches Argo CD and a GitOps repo, finds the commit that broke a sync."""

__version__ = "0.1.0"
