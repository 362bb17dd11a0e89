"""Benchmarks: connectpy against a raw-ASGI floor and its peers (``make bench``)."""
