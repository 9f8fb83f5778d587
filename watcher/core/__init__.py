"""Pure decisions: plain data in, plain data out; no network, git, database, clock or adapters."""
