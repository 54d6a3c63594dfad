"""Exception classes of :mod:`mptcp` and the one errno-to-class table.

Every error the library raises for a kernel answer is an :class:`MPTCPError`, which
is an :class:`OSError`, so ``except OSError``, ``.errno`` and ``.strerror`` keep
working. Specific classes also inherit the matching builtin where one exists.
"""

from __future__ import annotations

import errno as _errno
import os
from typing import Optional, Tuple

__all__ = [
    "MPTCPError",
    "NotMPTCPError",
    "SubflowNotFoundError",
    "SubflowOpenError",
    "MPTCPTimeoutError",
    "KernelTooOldError",
    "UnsupportedOperationError",
    "PathManagerError",
    "MPTCPPermissionError",
    "EventsLostError",
    "error_from_errno",
]


class MPTCPError(OSError):
    """Base of every error raised by :mod:`mptcp`; also any errno without a class."""

    __module__ = "mptcp"


class NotMPTCPError(MPTCPError):
    """Plain TCP, fallen back, not a stream socket, closed connection or unknown token."""

    __module__ = "mptcp"


class SubflowNotFoundError(MPTCPError, LookupError):
    """No subflow with that id or tuple."""

    __module__ = "mptcp"


class SubflowOpenError(MPTCPError):
    """The kernel refused or reset the new subflow; ``errno`` says why."""

    __module__ = "mptcp"


class MPTCPTimeoutError(MPTCPError, TimeoutError):
    """A wait bounded by ``timeout`` expired."""

    __module__ = "mptcp"


class KernelTooOldError(MPTCPError):
    """The running kernel lacks the interface; ``min_version`` names the first that has it."""

    __module__ = "mptcp"

    def __init__(self, *args: object, min_version: Optional[Tuple[int, int]] = None) -> None:
        super().__init__(*args)
        self.min_version = min_version

    def __reduce__(self):  # type: ignore[no-untyped-def]
        # OSError pickles only its args; keep min_version too.
        return (_rebuild_too_old, (self.args, self.min_version))


def _rebuild_too_old(args: tuple, min_version: Optional[Tuple[int, int]]) -> "KernelTooOldError":  # type: ignore[type-arg]
    return KernelTooOldError(*args, min_version=min_version)


_rebuild_too_old.__module__ = "mptcp._errors"


class UnsupportedOperationError(MPTCPError):
    """The kernel or backend cannot do this at all (the message says what can)."""

    __module__ = "mptcp"

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            # errno EOPNOTSUPP keeps .errno meaningful for callers that look at it.
            super().__init__(_errno.EOPNOTSUPP, args[0])
        else:
            super().__init__(*args)


class PathManagerError(MPTCPError):
    """Wrong path manager mode, endpoint conflicts, extended-ack errors."""

    __module__ = "mptcp"


class MPTCPPermissionError(MPTCPError, PermissionError):
    """CAP_NET_ADMIN (in this network namespace) is needed."""

    __module__ = "mptcp"


class EventsLostError(MPTCPError):
    """The kernel dropped events (ENOBUFS): the stream is incomplete."""

    __module__ = "mptcp"


# The one errno table, for every context. Calls pass ``overrides`` where an errno
# means something more specific for that one call (e.g. EINVAL for an unknown id on
# the draft kernel, ENOBUFS on the events socket, which alone can lose events).
# ENOPROTOOPT is a KernelTooOldError only where the caller knows which version has
# the interface (``min_version``): the contract says the class carries one.
_ERRNO_CLASSES = {
    _errno.EOPNOTSUPP: NotMPTCPError,
    _errno.ENOTCONN: NotMPTCPError,
    _errno.ESRCH: SubflowNotFoundError,
    _errno.ENOENT: SubflowNotFoundError,
    _errno.EPERM: MPTCPPermissionError,
    _errno.EACCES: MPTCPPermissionError,
    _errno.ETIMEDOUT: MPTCPTimeoutError,
}


def error_from_errno(
    err: int,
    message: str,
    *,
    overrides: Optional[dict] = None,  # type: ignore[type-arg]
    default: type = MPTCPError,
    min_version: Optional[Tuple[int, int]] = None,
) -> MPTCPError:
    """Build the exception for ``err``: ``message`` says what was attempted and what to do.

    ``min_version`` is the first kernel with the interface that failed, where the
    caller knows it: ENOPROTOOPT then becomes a :class:`KernelTooOldError` carrying it.
    """
    cls: Optional[type] = None
    if overrides:
        cls = overrides.get(err)
    if cls is None:
        if err == _errno.ENOPROTOOPT and min_version is not None:
            cls = KernelTooOldError
        else:
            cls = _ERRNO_CLASSES.get(err, default)
    text = f"{message}: {os.strerror(err)}" if err else message
    if cls is KernelTooOldError:
        return KernelTooOldError(err, text, min_version=min_version)
    return cls(err, text)  # type: ignore[no-any-return]
