"""The composition root: the daemon builds the adapters and hands them to the wings; HTTP and leadership."""
