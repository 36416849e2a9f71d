"""`lockgate server`: scheduler loop, run launcher and HTTP API (needs the [server] extra)."""
