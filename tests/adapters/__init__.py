"""The thin clients: Argo CD over HTTP(S), git, Helm, JSON lists."""
