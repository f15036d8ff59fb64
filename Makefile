.PHONY: bench bench-smoke

PYTHON ?= .venv/bin/python

# The full benchmark (ping, mixed, mixed with tracing, large-fleet, flood, latency), three runs each.
bench:
	$(PYTHON) -m bench.run --profile all --runs 3 --json bench-results/bench.json

# Every profile end to end with a small stream, counts asserted (no timing).
bench-smoke:
	$(PYTHON) -m pytest -q tests/bench
