"""Runnable examples: ``python -m examples.<name>`` serves one with Hypercorn."""
