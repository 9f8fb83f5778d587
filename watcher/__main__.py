"""`python -m watcher` is the `sync-watcher` command."""

from watcher.cli import main

main()
