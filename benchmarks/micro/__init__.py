"""Micro-benchmarks (pytest-benchmark): ``make bench-micro``. Files are ``bench_*.py`` so the
repo's own test run (``testpaths = ["tests"]``, ``test_*.py``) never collects them."""
