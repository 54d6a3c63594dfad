"""Shared pytest configuration: the ``kernel`` marker and the namespace lab fixtures."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from mptcp._lab import Lab

KERNEL_DIR = Path(__file__).parent / "kernel"
LAB_PREFIX = "mptcp"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def kernel_missing_reason() -> str | None:
    """Why kernel tests cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return "kernel tests need root (network namespaces, CAP_NET_ADMIN)"
    try:
        with open("/proc/sys/net/mptcp/enabled") as f:
            enabled = f.read().strip()
    except OSError:
        return "kernel tests need a kernel with MPTCP (/proc/sys/net/mptcp/enabled is missing)"
    if enabled != "1":
        return f"kernel tests need MPTCP enabled (net.mptcp.enabled = {enabled})"
    return None


def pytest_configure(config: pytest.Config) -> None:
    # A shell's background job starts with SIGINT ignored, and an ignored signal
    # stays ignored across exec: the Ctrl-C tests' children would then never see
    # the SIGINT they are sent. A handled one is reset to the default in children.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    config.addinivalue_line(
        "markers",
        "kernel: needs root and an MPTCP kernel; runs in private network namespaces",
    )


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    for item in items:
        if KERNEL_DIR in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.kernel)


def pytest_sessionstart(session: pytest.Session) -> None:
    # Namespaces of killed runs would otherwise pile up.
    if os.geteuid() != 0 or not os.path.isdir("/run/netns"):
        return
    try:
        from mptcp._lab import cleanup_stale
    except Exception:  # the package may not import yet; kernel tests will say so
        return
    cleanup_stale(LAB_PREFIX)


def require_tool(tool: str, install: str) -> str:
    """The path of ``tool`` (a command name or an absolute path); a skip without it,
    a failure under CI=true (the CI run installs it: ``.ci/run``)."""
    import shutil

    found = shutil.which(tool)
    if found is None:
        msg = f"{tool} is missing: {install}"
        if _in_ci():
            pytest.fail(f"CI=true, so this is a failure, not a skip: {msg}", pytrace=False)
        pytest.skip(msg)
    return found


_CI_FAILED = pytest.StashKey[str]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("kernel") is None:
        return
    reason = kernel_missing_reason()
    if reason is None:
        return
    if _in_ci():
        # The CI machine has the kernel: a kernel test that cannot run is a failure.
        item.stash[_CI_FAILED] = reason
        pytest.fail(f"CI=true, so this is a failure, not a skip: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if call.when == "setup" and report.failed and _CI_FAILED in item.stash:
        # Report it as a failed test rather than a setup error.
        report.when = "call"


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A two-path lab with an in-kernel ``subflow`` endpoint on the client's c2."""
    from mptcp._lab import Lab

    lab = Lab(prefix=LAB_PREFIX)
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture(scope="module")
def pm_lab() -> Iterator[Lab]:
    """A lab whose client has the in-kernel path manager and no endpoint (the
    tests add and remove them), shared by a module's tests."""
    from mptcp._lab import Lab

    lab = Lab(prefix=LAB_PREFIX, endpoint=False)
    try:
        yield lab
    finally:
        lab.close()


def _userspace_lab() -> Iterator[Lab]:
    from mptcp._lab import Lab

    lab = Lab(prefix=LAB_PREFIX, userspace_pm=True, endpoint=False)
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def lab_userspace() -> Iterator[Lab]:
    """A two-path lab whose client uses the userspace path manager (no endpoint)."""
    yield from _userspace_lab()


@pytest.fixture(scope="module")
def ulab() -> Iterator[Lab]:
    """lab_userspace shared by a module's tests (each test opens its own connections)."""
    yield from _userspace_lab()


def two_subflows(lab: Lab, family: int = socket.AF_INET, server_addr: str | None = None,
                 server: Any = None) -> socket.socket:
    """A connection of ``lab`` (a ``lab`` fixture's, with its endpoint) once both of its
    subflows are established."""
    import mptcp

    server = server or lab.start_server(family=family)
    sock = lab.connect(family=family, port=server.port, server_addr=server_addr)
    sock.sendall(b"x" * 65536)  # the in-kernel PM opens the endpoint's subflow after data
    lab.wait_for(lambda: [s.state for s in mptcp.subflows(sock)] == [1, 1],
                 timeout=10, what="second subflow established")
    return sock
