"""Serving: the HTTP endpoints (/metrics, /-/healthy, /-/ready) with TLS and basic auth."""
