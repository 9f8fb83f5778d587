"""The pre-flight wing: Argo CD's own renderer judges each new commit before Argo CD deploys it."""
