"""The exception classes and the one errno table (README, Errors)."""

from __future__ import annotations

import errno
import pickle

import pytest

import mptcp
from mptcp._errors import error_from_errno

CLASSES = [
    (mptcp.MPTCPError, OSError), (mptcp.NotMPTCPError, mptcp.MPTCPError),
    (mptcp.SubflowNotFoundError, LookupError), (mptcp.SubflowOpenError, mptcp.MPTCPError),
    (mptcp.MPTCPTimeoutError, TimeoutError), (mptcp.KernelTooOldError, mptcp.MPTCPError),
    (mptcp.UnsupportedOperationError, mptcp.MPTCPError), (mptcp.PathManagerError, mptcp.MPTCPError),
    (mptcp.MPTCPPermissionError, PermissionError), (mptcp.EventsLostError, mptcp.MPTCPError),
]


@pytest.mark.parametrize("cls,base", CLASSES)
def test_hierarchy_module_and_pickle(cls: type, base: type) -> None:
    assert issubclass(cls, base) and issubclass(cls, mptcp.MPTCPError)
    assert cls.__module__ == "mptcp" and getattr(mptcp, cls.__name__) is cls
    err = cls(errno.EINVAL, "what happened")
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is cls and again.errno == errno.EINVAL and again.strerror == "what happened"


def test_kernel_too_old_keeps_min_version_through_pickle() -> None:
    err = mptcp.KernelTooOldError(errno.EOPNOTSUPP, "needs 6.5", min_version=(6, 5))
    again = pickle.loads(pickle.dumps(err))
    assert again.min_version == (6, 5) and again.errno == errno.EOPNOTSUPP


def test_unsupported_operation_carries_eopnotsupp() -> None:
    err = mptcp.UnsupportedOperationError("cannot do that")
    assert err.errno == errno.EOPNOTSUPP and "cannot do that" in str(err)


@pytest.mark.parametrize("err,cls", [
    (errno.EOPNOTSUPP, mptcp.NotMPTCPError), (errno.ESRCH, mptcp.SubflowNotFoundError),
    (errno.EPERM, mptcp.MPTCPPermissionError), (errno.ETIMEDOUT, mptcp.MPTCPTimeoutError),
    (errno.EBADF, mptcp.MPTCPError),
    (errno.EIO, mptcp.MPTCPError), (12345, mptcp.MPTCPError),
])
def test_errno_table(err: int, cls: type) -> None:
    exc = error_from_errno(err, "get_sub_ids on fd 3")
    assert type(exc) is cls and exc.errno == err
    assert str(exc).startswith(f"[Errno {err}] get_sub_ids on fd 3")


def test_overrides_win_for_one_call() -> None:
    exc = error_from_errno(errno.EINVAL, "close_sub", overrides={errno.EINVAL: mptcp.SubflowNotFoundError})
    assert type(exc) is mptcp.SubflowNotFoundError


def test_enobufs_is_events_lost_only_where_events_are_read() -> None:
    # Only the events socket can lose events; a path-manager command's ENOBUFS is
    # just an errno (the events monitor passes its own override).
    exc = error_from_errno(errno.ENOBUFS, "set_limits")
    assert type(exc) is mptcp.MPTCPError and exc.errno == errno.ENOBUFS
    exc = error_from_errno(errno.ENOBUFS, "add_endpoint", default=mptcp.PathManagerError)
    assert type(exc) is mptcp.PathManagerError
    exc = error_from_errno(errno.ENOBUFS, "events", overrides={errno.ENOBUFS: mptcp.EventsLostError})
    assert type(exc) is mptcp.EventsLostError


def test_enoprotoopt_is_kernel_too_old_only_with_a_version() -> None:
    # The contract says KernelTooOldError carries min_version: a bare ENOPROTOOPT
    # says nothing about versions, so it is no KernelTooOldError.
    exc = error_from_errno(errno.ENOPROTOOPT, "get_sub_ids on fd 3")
    assert type(exc) is mptcp.MPTCPError and exc.errno == errno.ENOPROTOOPT
    exc = error_from_errno(errno.ENOPROTOOPT, "get_sub_ids on fd 3", min_version=(6, 5))
    assert type(exc) is mptcp.KernelTooOldError and exc.min_version == (6, 5)
    assert exc.errno == errno.ENOPROTOOPT
