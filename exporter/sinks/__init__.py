"""Sinks: what the job layer observed, as Prometheus metrics and OpenTelemetry spans."""
