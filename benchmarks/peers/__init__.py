"""Peer frameworks and servers, importable only in the bench venv (``benchmarks/.venv``).

mypy skips this package's errors (see pyproject): the peers are not installed in the repo's
own venv. Nothing outside this package imports it at module level.
"""
