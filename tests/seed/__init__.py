"""One suite of the six seed calls, run over both backends (see conftest.py)."""
