"""The simulator checked against Argo CD's swagger and real captured objects."""
