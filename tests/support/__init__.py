"""Helpers for the tests, one module per subject; imported as ``from support.<module> import ...`` (pyproject's
``pythonpath = ["tests"]``)."""
