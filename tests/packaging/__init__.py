"""The layering contract, the Helm chart and the container image."""
