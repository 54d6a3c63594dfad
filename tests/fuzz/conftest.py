"""The opt-in long fuzz run: marker ``fuzz``, left out unless MPTCP_FUZZ_EXAMPLES is set.

Left out means deselected, not skipped: CI treats any skipped test as a broken
harness, and the long run is not part of CI (the bounded differential tests of
``tests/unit/test_fuzz_decoders.py`` are).
"""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "fuzz: long differential fuzz run of every decoder (opt-in: MPTCP_FUZZ_EXAMPLES=N)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("MPTCP_FUZZ_EXAMPLES"):
        return
    keep, drop = [], []
    for item in items:
        (drop if item.get_closest_marker("fuzz") is not None else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
