"""``modelguard serve``: the guarded reverse proxy (sidecar) and its metrics."""
