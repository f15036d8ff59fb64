"""Benchmarks: a Salt-framed stream generator and an end-to-end runner against the real daemon."""
