"""The fixed set of functions a backend binds, once, for the public layer.

Arguments arrive checked (``mptcp._args``): ``sock`` may still be any socket-like
object for the hot reads (the core turns it into an fd), every other call gets an
int fd, hosts come as :class:`~mptcp._addr.Host`.
"""

from __future__ import annotations

from typing import Any, Callable

from .._errors import UnsupportedOperationError

__all__ = ["Backend", "refusal", "upstream_only"]


class Backend:
    """One backend's functions (see :func:`mptcp._backends.select`).

    ``final`` is False when the selection rests on something not yet known (no
    MPTCP socket could be made to probe the kernel): the public layer then asks
    again on the next call instead of keeping this one.
    """

    __slots__ = (
        "name", "final", "sub_id_max",
        "get_sub_ids", "get_sub_tuple", "open_sub", "close_sub",
        "get_sub_sockopt_int", "set_sub_sockopt_int", "get_sub_sockopt", "set_sub_sockopt",
        "get_subflow_sockopt", "set_subflow_sockopt", "unload_sockopt", "subflow_options",
        "set_sub_prio", "info", "is_mptcp", "subflows", "require_poller",
    )
    name: str
    final: bool
    sub_id_max: int
    get_sub_ids: Callable[..., Any]
    get_sub_tuple: Callable[..., Any]
    open_sub: Callable[..., Any]
    close_sub: Callable[..., Any]
    get_sub_sockopt_int: Callable[..., Any]
    set_sub_sockopt_int: Callable[..., Any]
    get_sub_sockopt: Callable[..., Any]
    set_sub_sockopt: Callable[..., Any]
    get_subflow_sockopt: Callable[..., Any]
    set_subflow_sockopt: Callable[..., Any]
    unload_sockopt: Callable[..., Any]
    subflow_options: Callable[..., Any]
    set_sub_prio: Callable[..., Any]
    info: Callable[..., Any]
    is_mptcp: Callable[..., Any]
    subflows: Callable[..., Any]
    require_poller: Callable[..., Any]

    def __init__(self, name: str, *, final: bool = True, sub_id_max: int = 0xFFFFFFFF,
                 **calls: Callable[..., Any]) -> None:
        self.name = name
        self.final = final
        self.sub_id_max = sub_id_max
        missing = set(self.__slots__[3:]) - set(calls)
        if missing:
            raise TypeError(f"backend {name!r} lacks {sorted(missing)}")
        for call, fn in calls.items():
            setattr(self, call, fn)

    def __repr__(self) -> str:
        return f"<mptcp backend {self.name}{'' if self.final else ' (provisional)'}>"


def refusal(text: str) -> Callable[..., Any]:
    """A stand-in for a call the backend cannot make: it raises
    UnsupportedOperationError with ``text``."""
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise UnsupportedOperationError(text)

    return refuse


def upstream_only(call: str) -> Callable[..., Any]:
    """A stand-in for a call only the upstream kernel has."""
    return refusal(
        f"{call} needs the upstream Linux MPTCP interfaces; the draft-API kernel "
        "offers only the six seed calls (get_sub_ids, get_sub_tuple, open_sub, "
        "close_sub, get_sub_sockopt_int, set_sub_sockopt_int)"
    )
