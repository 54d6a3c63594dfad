"""Fixtures shared by the draft-kernel double's tests."""

from __future__ import annotations

import os
import pathlib

import pytest

from .build import CompilerNotFound, build_double


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def double_so() -> pathlib.Path:
    """The compiled LD_PRELOAD double (built once, cached on disk)."""
    try:
        return build_double()
    except CompilerNotFound as exc:
        if in_ci():
            pytest.fail(f"{exc} (CI=true: a missing compiler is a failure, not a skip)")
        pytest.skip(str(exc))
