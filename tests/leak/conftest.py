"""Leak checks: marker ``leak``, left out unless ``MPTCP_LEAK=1``.

Left out means deselected, not skipped: CI treats any skipped test as a broken
harness. CI runs them at a fraction of the full counts (below)::

    MPTCP_LEAK=1 MPTCP_LEAK_SCALE=0.05 python -m pytest -m leak tests/leak

and the long run uses the full counts (``MPTCP_LEAK_SCALE=1``, the default).

Counts (full size; each is multiplied by ``MPTCP_LEAK_SCALE`` and never drops
below its floor, so that a leak of one block per call still exceeds the bounds
the tests assert):

===========================  ===========  =========  =====
what                         env var      full       floor
===========================  ===========  =========  =====
``Poller.poll()``            MPTCP_LEAK_POLLS        1,000,000  20,000
``subflows()``               MPTCP_LEAK_SUBFLOWS       100,000   2,000
``connections()``            MPTCP_LEAK_CONNECTIONS    100,000   2,000
event decodes                MPTCP_LEAK_EVENTS         100,000   2,000
``open_sub``/``close_sub``   MPTCP_LEAK_CYCLES          10,000     200
===========================  ===========  =========  =====

A per-count variable, when set, is used as is (no scale, no floor).

Most of these tests need root and an MPTCP kernel (namespace labs): they get
the ``kernel`` marker here, so the top-level conftest skips them without root
and fails them under ``CI=true``, exactly as for ``tests/kernel``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

FULL = {
    "POLLS": 1_000_000,
    "SUBFLOWS": 100_000,
    "CONNECTIONS": 100_000,
    "EVENTS": 100_000,
    "CYCLES": 10_000,
}
FLOOR = {
    "POLLS": 20_000,
    "SUBFLOWS": 2_000,
    "CONNECTIONS": 2_000,
    "EVENTS": 2_000,
    "CYCLES": 200,
}
# Fixtures that make a namespace lab: a test using one needs root + MPTCP.
LAB_FIXTURES = {"lab", "lab_userspace", "ulab"}


def _enabled() -> bool:
    return os.environ.get("MPTCP_LEAK", "").strip().lower() in ("1", "true", "yes")


def _scale() -> float:
    raw = os.environ.get("MPTCP_LEAK_SCALE", "1")
    try:
        scale = float(raw)
    except ValueError:
        raise pytest.UsageError(f"MPTCP_LEAK_SCALE={raw!r} is not a number") from None
    if not 0 < scale <= 100:
        raise pytest.UsageError(f"MPTCP_LEAK_SCALE={raw!r} must be in (0, 100]")
    return scale


def leak_count(name: str) -> int:
    """How many calls the test of ``name`` (a key of FULL) makes."""
    raw = os.environ.get(f"MPTCP_LEAK_{name}")
    if raw:
        try:
            n = int(raw)
        except ValueError:
            raise pytest.UsageError(f"MPTCP_LEAK_{name}={raw!r} is not an int") from None
        if n < 1:
            raise pytest.UsageError(f"MPTCP_LEAK_{name} must be >= 1")
        return n
    return max(FLOOR[name], int(FULL[name] * _scale()))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "leak: RSS and object-count checks over many calls (opt-in: MPTCP_LEAK=1; "
        "MPTCP_LEAK_SCALE scales the counts)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        if os.path.dirname(os.path.abspath(str(item.path))) != here:
            continue
        item.add_marker(pytest.mark.leak)
        if LAB_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.kernel)
    if _enabled():
        _scale()  # a bad value is a usage error before anything runs
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        (drop if item.get_closest_marker("leak") is not None else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture
def count() -> Callable[[str], int]:
    return leak_count
