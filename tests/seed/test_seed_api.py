"""The six seed calls and ``Subflow``, one suite over both backends.

Written against the public ``mptcp`` API only. Here (the parent process) every test
taking ``seed_env``/``seed_conn`` runs over the upstream backend on the real kernel
(userspace-PM lab). ``test_seed_api_over_draft_backend`` re-runs this whole
directory in a child ``pytest`` with the draft-kernel double preloaded and
``MPTCP_BACKEND=draft``, and fails listing the child's failures. Where the backends
legitimately differ (the README's API table: ``prio``/``status``, ``backup=True``, the
per-subflow options), the test asserts each side from ``seed_env``.
"""

from __future__ import annotations

import errno
import os
import pathlib
import pickle
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from typing import Any

import pytest

import mptcp
from mptcp import (
    MPTCPError,
    NotMPTCPError,
    Subflow,
    SubflowNotFoundError,
    SubflowOpenError,
    SubflowStatus,
    UnsupportedOperationError,
)

from .conftest import IN_CHILD, IPPROTO_MPTCP, PARENT_TEST, SOCKOPT_TABLE, SOL_TCP, SeedEnv

REPO = pathlib.Path(__file__).resolve().parents[2]
SEED_DIR = pathlib.Path(__file__).resolve().parent
FULL = SubflowStatus.FULLY_ESTABLISHED | SubflowStatus.ATTACHED

# The child must run at least this many tests (an empty or broken collection fails).
MIN_CHILD_TESTS = 60


def _host(family: int, text: str) -> str:
    return str(socket.inet_ntop(family, socket.inet_pton(family, text)))


def _peer(conn: socket.socket) -> tuple[str, int]:
    h, p = conn.getpeername()[:2]
    return _host(conn.family, h), p


def _name(conn: socket.socket) -> tuple[str, int]:
    h, p = conn.getsockname()[:2]
    return _host(conn.family, h), p


def _id(sf: Subflow) -> int:
    assert type(sf.id) is int
    return sf.id


def _check_record(env: SeedEnv, sf: Subflow, backup: bool = False) -> None:
    """What every Subflow the backend returns looks like."""
    assert isinstance(sf, Subflow)
    assert type(sf.id) is int and sf.id >= 1
    for host, port in (sf.local, sf.remote):
        assert host == _host(env.family, host), "not canonical text"
        assert "[" not in host and "%" not in host
        assert type(port) is int and 0 < port <= 65535
    if env.prio_reported:
        assert sf.prio == (1 if backup else 0)
        assert sf.backup is backup
    else:
        assert sf.prio is None and sf.backup is None
    if env.status_reported:
        assert isinstance(sf.status, SubflowStatus) and sf.status == FULL
    else:
        assert sf.status is None


# --------------------------------------------------------------------------------
# get_sub_ids / get_sub_tuple
# --------------------------------------------------------------------------------
def test_backend_is_the_one_under_test(seed_env: SeedEnv) -> None:
    assert mptcp.backend() == seed_env.backend


def test_fresh_connection_has_subflow_1(seed_conn: socket.socket) -> None:
    ids = mptcp.get_sub_ids(seed_conn)
    assert ids == [1] and type(ids) is list and type(ids[0]) is int


def test_initial_tuple_matches_socket_names(seed_env: SeedEnv, seed_conn: socket.socket) -> None:
    sf = mptcp.get_sub_tuple(seed_conn, 1)
    _check_record(seed_env, sf)
    assert _id(sf) == 1
    assert sf.local == _name(seed_conn)
    assert sf.remote == _peer(seed_conn)


def test_accepts_fd_and_fileno_objects(seed_conn: socket.socket) -> None:
    class Wrapper:
        def fileno(self) -> int:
            return seed_conn.fileno()

    ids = mptcp.get_sub_ids(seed_conn)
    assert mptcp.get_sub_ids(seed_conn.fileno()) == mptcp.get_sub_ids(Wrapper()) == ids
    assert mptcp.get_sub_tuple(Wrapper(), 1) == mptcp.get_sub_tuple(seed_conn.fileno(), 1) \
        == mptcp.get_sub_tuple(seed_conn, 1)
    assert seed_conn.fileno() >= 0  # never closed nor detached


def test_unconnected_socket_has_no_subflows(seed_env: SeedEnv) -> None:
    assert mptcp.get_sub_ids(seed_env.socket()) == []


def test_plain_tcp_is_not_mptcp(seed_env: SeedEnv) -> None:
    plain = seed_env.connect(proto=socket.IPPROTO_TCP)
    calls = {
        "get_sub_ids": lambda: mptcp.get_sub_ids(plain),
        "get_sub_tuple": lambda: mptcp.get_sub_tuple(plain, 1),
        "open_sub": lambda: mptcp.open_sub(plain, local=seed_env.new_local),
        "close_sub": lambda: mptcp.close_sub(plain, 1),
        "get_sub_sockopt_int": lambda: mptcp.get_sub_sockopt_int(plain, 1, SOL_TCP,
                                                                 socket.TCP_MAXSEG),
    }
    for name, call in calls.items():
        with pytest.raises(NotMPTCPError):
            call()
    with pytest.raises(NotMPTCPError if seed_env.set_sockopt_supported
                       else UnsupportedOperationError):
        mptcp.set_sub_sockopt_int(plain, 1, SOL_TCP, socket.TCP_NODELAY, 1)


def test_closed_and_non_socket_fds(seed_env: SeedEnv) -> None:
    s = socket.socket(seed_env.family, socket.SOCK_STREAM, IPPROTO_MPTCP)
    fd = s.fileno()
    s.close()
    for call in (lambda: mptcp.get_sub_ids(fd), lambda: mptcp.get_sub_tuple(fd, 1)):
        with pytest.raises(MPTCPError) as info:
            call()
        assert info.value.errno == errno.EBADF and isinstance(info.value, OSError)
    r, w = os.pipe()
    try:
        for call in (lambda: mptcp.get_sub_ids(r), lambda: mptcp.get_sub_tuple(r, 1)):
            with pytest.raises(MPTCPError) as info:
                call()
            assert info.value.errno == errno.ENOTSOCK
    finally:
        os.close(r)
        os.close(w)


# --------------------------------------------------------------------------------
# open_sub
# --------------------------------------------------------------------------------
def test_open_sub_new_id_appears(seed_env: SeedEnv, seed_conn: socket.socket) -> None:
    before = mptcp.get_sub_ids(seed_conn)
    sf = mptcp.open_sub(seed_conn, local=seed_env.new_local)
    _check_record(seed_env, sf)
    assert _id(sf) not in before and _id(sf) > max(before)
    assert mptcp.get_sub_ids(seed_conn) == sorted(before + [_id(sf)])
    assert sf.local[0] == seed_env.new_local and sf.local[1] != _name(seed_conn)[1]
    assert sf.remote == _peer(seed_conn)  # remote None: the connection's peer and port
    assert mptcp.get_sub_tuple(seed_conn, _id(sf)) == sf
    assert mptcp.get_sub_tuple(seed_conn, 1).local == _name(seed_conn)  # untouched


def test_open_sub_local_from_routing_table(seed_env: SeedEnv, seed_conn: socket.socket) -> None:
    """local None: the source the routing table picks; a remote without port: the peer's."""
    sf = mptcp.open_sub(seed_conn, remote=seed_env.alt_remote)
    _check_record(seed_env, sf)
    assert sf.local[0] == seed_env.new_local
    assert sf.remote == (seed_env.alt_remote, _peer(seed_conn)[1])
    assert _id(sf) in mptcp.get_sub_ids(seed_conn)


def test_open_sub_explicit_ports(seed_env: SeedEnv, seed_conn: socket.socket) -> None:
    with socket.socket(seed_env.family, socket.SOCK_STREAM) as probe:
        probe.bind((seed_env.new_local, 0))
        port = probe.getsockname()[1]
    sf = mptcp.open_sub(seed_conn, local=(seed_env.new_local, port), remote=_peer(seed_conn))
    assert sf.local == (seed_env.new_local, port)
    assert sf.remote == _peer(seed_conn)
    assert mptcp.get_sub_tuple(seed_conn, _id(sf)) == sf


def test_open_sub_from_subflow_record(seed_env: SeedEnv, seed_conn: socket.socket) -> None:
    tmpl = Subflow(None, (seed_env.new_local, 0), mptcp.get_sub_tuple(seed_conn, 1).remote)
    sf = mptcp.open_sub(seed_conn, tmpl)
    _check_record(seed_env, sf)
    assert sf.local[0] == seed_env.new_local and sf.remote == tmpl.remote
    assert mptcp.get_sub_ids(seed_conn) == [1, _id(sf)]


def test_open_sub_backup(seed_env: SeedEnv, seed_conn: socket.socket) -> None:
    """Upstream opens a backup subflow (prio 1); the draft kernel cannot, and says so."""
    peer = _peer(seed_conn)
    if seed_env.backup_supported:
        sf = mptcp.open_sub(seed_conn, local=seed_env.new_local, backup=True)
        _check_record(seed_env, sf, backup=True)
        assert mptcp.get_sub_tuple(seed_conn, _id(sf)).prio == 1
        sf2 = mptcp.open_sub(seed_conn, Subflow(None, (seed_env.new_local, 0), peer, prio=1))
        _check_record(seed_env, sf2, backup=True)
        assert mptcp.get_sub_ids(seed_conn) == [1, _id(sf), _id(sf2)]
        assert mptcp.get_sub_tuple(seed_conn, 1).prio == 0  # the others keep theirs
    else:
        with pytest.raises(UnsupportedOperationError, match="priority"):
            mptcp.open_sub(seed_conn, local=seed_env.new_local, backup=True)
        with pytest.raises(UnsupportedOperationError):
            mptcp.open_sub(seed_conn, Subflow(None, (seed_env.new_local, 0), peer, prio=1))
        assert mptcp.get_sub_ids(seed_conn) == [1], "a subflow was opened anyway"


def test_open_sub_absent_local_address(seed_env: SeedEnv, seed_conn: socket.socket) -> None:
    with pytest.raises(SubflowOpenError) as info:
        mptcp.open_sub(seed_conn, local=seed_env.absent_local)
    assert info.value.errno == errno.EADDRNOTAVAIL
    assert not isinstance(info.value, PermissionError)
    assert mptcp.get_sub_ids(seed_conn) == [1]


def test_open_sub_argument_errors(seed_env: SeedEnv, seed_conn: socket.socket) -> None:
    """Checked before any syscall, the same on both backends."""
    loc, peer = seed_env.new_local, _peer(seed_conn)
    other = "::1" if seed_env.family == socket.AF_INET else "127.0.0.1"
    type_errors: list[dict[str, Any]] = [
        {"local": 12345},
        {"local": (loc,)},
        {"local": (loc, "80")},
        {"remote": [peer[0], peer[1]]},
        {"backup": 1},
        {"backup": "yes"},
        {"timeout": "1"},
        {"timeout": True},
    ]
    for kw in type_errors:
        with pytest.raises(TypeError):
            mptcp.open_sub(seed_conn, **kw)
    with pytest.raises(TypeError):
        mptcp.open_sub(seed_conn, (loc, 0))  # type: ignore[arg-type]  # not a Subflow
    with pytest.raises(TypeError):
        mptcp.open_sub(seed_conn, Subflow(None, (loc, 0), peer), local=loc)
    value_errors: list[dict[str, Any]] = [
        {"local": "not-an-address"},
        {"local": (loc, 65536)},
        {"local": (loc, -1)},
        {"remote": (peer[0], 70000)},
        {"local": other},  # family differs from the remote's
        {"timeout": 0},
        {"timeout": -1.0},
    ]
    for kw in value_errors:
        with pytest.raises(ValueError):
            mptcp.open_sub(seed_conn, **kw)
    assert mptcp.get_sub_ids(seed_conn) == [1], "an argument error opened a subflow"


# --------------------------------------------------------------------------------
# close_sub, and ids over the connection's life
# --------------------------------------------------------------------------------
def test_close_sub_removes_it(seed_env: SeedEnv, seed_conn: socket.socket) -> None:
    sf = mptcp.open_sub(seed_conn, local=seed_env.new_local)
    mptcp.close_sub(seed_conn, _id(sf))
    assert mptcp.get_sub_ids(seed_conn) == [1]
    with pytest.raises(SubflowNotFoundError):
        mptcp.get_sub_tuple(seed_conn, _id(sf))
    with pytest.raises(SubflowNotFoundError):
        mptcp.close_sub(seed_conn, _id(sf))
    with pytest.raises(SubflowNotFoundError):
        mptcp.get_sub_sockopt_int(seed_conn, _id(sf), SOL_TCP, socket.TCP_MAXSEG)


def test_ids_ascending_and_never_reused(seed_env: SeedEnv, seed_conn: socket.socket) -> None:
    a = mptcp.open_sub(seed_conn, local=seed_env.new_local)
    b = mptcp.open_sub(seed_conn, remote=seed_env.alt_remote)
    assert 1 < _id(a) < _id(b)
    assert mptcp.get_sub_ids(seed_conn) == [1, _id(a), _id(b)]
    mptcp.close_sub(seed_conn, _id(a))
    assert mptcp.get_sub_ids(seed_conn) == [1, _id(b)]
    c = mptcp.open_sub(seed_conn, local=seed_env.new_local)
    assert _id(c) > _id(b), "a closed subflow's id was reused"
    ids = mptcp.get_sub_ids(seed_conn)
    assert ids == sorted(ids) == [1, _id(b), _id(c)]
    for i in ids:
        assert mptcp.get_sub_tuple(seed_conn, i).id == i


def test_close_initial_subflow(seed_env: SeedEnv, seed_conn: socket.socket) -> None:
    """Closing subflow 1 works; the connection goes on over the other one."""
    sf = mptcp.open_sub(seed_conn, local=seed_env.new_local)
    mptcp.close_sub(seed_conn, 1)
    assert mptcp.get_sub_ids(seed_conn) == [_id(sf)]
    assert mptcp.get_sub_tuple(seed_conn, _id(sf)) == sf
    with pytest.raises(SubflowNotFoundError):
        mptcp.get_sub_tuple(seed_conn, 1)
    seed_conn.sendall(b"still there")


@pytest.mark.parametrize("how", [socket.SHUT_RD, socket.SHUT_WR], ids=["SHUT_RD", "SHUT_WR"])
def test_close_sub_half_close_unsupported(seed_conn: socket.socket, how: int) -> None:
    with pytest.raises(UnsupportedOperationError, match="SHUT_RDWR"):
        mptcp.close_sub(seed_conn, 1, how)
    assert mptcp.get_sub_ids(seed_conn) == [1], "the subflow was closed anyway"


def test_close_sub_bad_how(seed_conn: socket.socket) -> None:
    with pytest.raises(ValueError):
        mptcp.close_sub(seed_conn, 1, 7)
    with pytest.raises(ValueError):
        mptcp.close_sub(seed_conn, 1, -1)
    with pytest.raises(TypeError):
        mptcp.close_sub(seed_conn, 1, "SHUT_RDWR")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        mptcp.close_sub(seed_conn, 1, None)  # type: ignore[arg-type]
    assert mptcp.get_sub_ids(seed_conn) == [1]


# --------------------------------------------------------------------------------
# Unknown ids, id ranges and types (all four calls that take an id)
# --------------------------------------------------------------------------------
def _id_calls(conn: socket.socket, sub_id: Any) -> dict[str, Any]:
    return {
        "get_sub_tuple": lambda: mptcp.get_sub_tuple(conn, sub_id),
        "close_sub": lambda: mptcp.close_sub(conn, sub_id),
        "get_sub_sockopt_int": lambda: mptcp.get_sub_sockopt_int(conn, sub_id, SOL_TCP,
                                                                 socket.TCP_MAXSEG),
        "set_sub_sockopt_int": lambda: mptcp.set_sub_sockopt_int(conn, sub_id, SOL_TCP,
                                                                 socket.TCP_NODELAY, 1),
    }


@pytest.mark.parametrize("which", [0, 2, 200, "max"])
def test_unknown_id(seed_env: SeedEnv, seed_conn: socket.socket, which: Any) -> None:
    sub_id = seed_env.sub_id_max if which == "max" else which
    for name, call in _id_calls(seed_conn, sub_id).items():
        if name == "set_sub_sockopt_int" and not seed_env.set_sockopt_supported:
            with pytest.raises(UnsupportedOperationError):
                call()
            continue
        with pytest.raises(SubflowNotFoundError) as info:
            call()
        assert isinstance(info.value, LookupError), name
    assert mptcp.get_sub_ids(seed_conn) == [1]


def test_id_out_of_range(seed_env: SeedEnv, seed_conn: socket.socket) -> None:
    for sub_id in (-1, seed_env.sub_id_max + 1, 2**64):
        for name, call in _id_calls(seed_conn, sub_id).items():
            with pytest.raises(ValueError):
                call()
    assert mptcp.get_sub_ids(seed_conn) == [1]


def test_id_types(seed_conn: socket.socket) -> None:
    for sub_id in (True, "1", 1.0, None):
        for name, call in _id_calls(seed_conn, sub_id).items():
            with pytest.raises(TypeError):
                call()
    assert mptcp.get_sub_ids(seed_conn) == [1]


def test_sockopt_argument_errors(seed_conn: socket.socket) -> None:
    for level, optname in (("6", 2), (6, 2.0), (None, 2), (6, True)):
        with pytest.raises(TypeError):
            mptcp.get_sub_sockopt_int(seed_conn, 1, level, optname)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            mptcp.set_sub_sockopt_int(seed_conn, 1, level, optname, 1)  # type: ignore[arg-type]
    for level, optname in ((2**31, 2), (6, -(2**31) - 1)):
        with pytest.raises(ValueError):
            mptcp.get_sub_sockopt_int(seed_conn, 1, level, optname)
    with pytest.raises(TypeError):
        mptcp.set_sub_sockopt_int(seed_conn, 1, SOL_TCP, socket.TCP_NODELAY,
                                  "1")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        mptcp.set_sub_sockopt_int(seed_conn, 1, SOL_TCP, socket.TCP_NODELAY, 2**31)


# --------------------------------------------------------------------------------
# Per-subflow socket options
# --------------------------------------------------------------------------------
@pytest.mark.parametrize("opt", SOCKOPT_TABLE, ids=[o[0] for o in SOCKOPT_TABLE])
def test_get_sub_sockopt_int_table(seed_env: SeedEnv, seed_conn: socket.socket,
                                   opt: tuple[str, int, int]) -> None:
    """Each backend answers its documented options for subflow 1 exactly as the
    connection's own getsockopt does; every other option is unsupported."""
    _, level, optname = opt
    if (level, optname) in seed_env.get_sockopts:
        value = mptcp.get_sub_sockopt_int(seed_conn, 1, level, optname)
        assert type(value) is int
        if level == socket.SOL_SOCKET:
            assert value > 0  # the subflow's own buffer, autotuned apart from the MPTCP socket's
        else:
            assert value == seed_conn.getsockopt(level, optname)
    else:
        with pytest.raises(UnsupportedOperationError) as info:
            mptcp.get_sub_sockopt_int(seed_conn, 1, level, optname)
        assert not isinstance(info.value, (NotMPTCPError, SubflowNotFoundError))


def test_get_sub_sockopt_int_new_subflow(seed_env: SeedEnv, seed_conn: socket.socket) -> None:
    sf = mptcp.open_sub(seed_conn, local=seed_env.new_local)
    mss = mptcp.get_sub_sockopt_int(seed_conn, _id(sf), SOL_TCP, socket.TCP_MAXSEG)
    assert 0 < mss < 65536


def test_set_sub_sockopt_int(seed_env: SeedEnv, seed_conn: socket.socket) -> None:
    """Both backends set the option on the subflow and read it back. Upstream it is
    that subflow's alone (the MPTCP socket keeps its own); the draft double forwards
    it to the MPTCP socket itself."""
    before = seed_conn.getsockopt(SOL_TCP, socket.TCP_NODELAY)
    for want in (1, 0):
        mptcp.set_sub_sockopt_int(seed_conn, 1, SOL_TCP, socket.TCP_NODELAY, want)
        assert mptcp.get_sub_sockopt_int(seed_conn, 1, SOL_TCP, socket.TCP_NODELAY) == want
        mine = seed_conn.getsockopt(SOL_TCP, socket.TCP_NODELAY)
        assert mine == (want if seed_env.sockopt_reaches_mptcp_socket else before)


def test_set_sub_sockopt_sol_socket(seed_env: SeedEnv, seed_conn: socket.socket) -> None:
    """SOL_SOCKET options: one subflow's own upstream; the draft kernel cannot reach them."""
    before = seed_conn.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    if seed_env.sol_socket_supported:
        mptcp.set_sub_sockopt_int(seed_conn, 1, socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        assert mptcp.get_sub_sockopt_int(seed_conn, 1, socket.SOL_SOCKET, socket.SO_RCVBUF) == 131072
    else:
        with pytest.raises(UnsupportedOperationError):
            mptcp.set_sub_sockopt_int(seed_conn, 1, socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    assert seed_conn.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == before


# --------------------------------------------------------------------------------
# Subflow records (no connection needed; run in both processes too)
# --------------------------------------------------------------------------------
def test_subflow_record_shape() -> None:
    sf = Subflow(3, ("10.0.0.1", 1000), ("10.0.0.2", 80))
    assert Subflow._fields == ("id", "local", "remote", "prio", "backup", "status")
    assert (sf.prio, sf.backup, sf.status) == (None, None, None)
    assert sf == Subflow(3, ("10.0.0.1", 1000), ("10.0.0.2", 80), None, None, None)
    assert hash(sf) == hash(Subflow(3, ("10.0.0.1", 1000), ("10.0.0.2", 80)))
    assert Subflow.__module__ == "mptcp" and SubflowStatus.__module__ == "mptcp"
    with pytest.raises(AttributeError):
        sf.id = 4  # type: ignore[misc]
    assert sf._replace(prio=1).prio == 1 and sf.prio is None
    full = Subflow(2, ("::1", 1), ("::1", 2), 0, False, FULL)
    assert pickle.loads(pickle.dumps(full)) == full


def test_records_from_both_reads_agree(seed_env: SeedEnv, seed_conn: socket.socket) -> None:
    """open_sub and get_sub_tuple describe a subflow identically; records pickle."""
    sf = mptcp.open_sub(seed_conn, local=seed_env.new_local)
    again = mptcp.get_sub_tuple(seed_conn, _id(sf))
    assert again == sf and hash(again) == hash(sf)
    assert pickle.loads(pickle.dumps(again)) == again
    assert {s.id for s in (mptcp.get_sub_tuple(seed_conn, i)
                           for i in mptcp.get_sub_ids(seed_conn))} == {1, _id(sf)}


# --------------------------------------------------------------------------------
# The same suite over the draft backend: a child pytest under the double
# --------------------------------------------------------------------------------
def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _pkg_root() -> str:
    return str(pathlib.Path(mptcp.__file__).resolve().parents[1])


def _outcome(case: ET.Element) -> tuple[str, str]:
    for tag, name in (("failure", "failed"), ("error", "failed"), ("skipped", "skipped")):
        el = case.find(tag)
        if el is not None:
            return name, ((el.get("message") or "") + "\n" + (el.text or "")).strip()
    return "passed", ""


@pytest.mark.skipif(IN_CHILD, reason="the child never recurses")
def test_seed_api_over_draft_backend(request: pytest.FixtureRequest,
                                     tmp_path: pathlib.Path,
                                     seed_summary: dict[str, Any]) -> None:
    assert PARENT_TEST == "test_seed_api_over_draft_backend"
    sys.path.insert(0, str(REPO))
    try:
        from tests.draftkernel.build import CompilerNotFound, build_double, child_env
    finally:
        sys.path.remove(str(REPO))
    try:
        so = build_double()
    except CompilerNotFound as exc:
        if _in_ci():
            pytest.fail(f"{exc} (CI=true: a missing compiler is a failure, not a skip)")
        pytest.skip(str(exc))

    env = child_env(so, {"MPTCP_BACKEND": "draft", "MPTCP_SEED_CHILD": "1"})
    env.pop("PYTEST_ADDOPTS", None)  # e.g. CI's --junitxml: the child writes its own
    parts = [_pkg_root()] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))  # the same mptcp as here
    junit = tmp_path / "seed-draft.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(SEED_DIR), "-q", "-rfEs", f"--junitxml={junit}",
         "-p", "no:cacheprovider"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    out = f"child exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    assert proc.returncode in (0, 1) and junit.exists(), out

    results: dict[str, tuple[str, str]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        results[case.get("name", "")] = _outcome(case)
    counts = {k: sum(1 for o, _ in results.values() if o == k)
              for k in ("passed", "failed", "skipped")}
    seed_summary["draft"] = counts
    print(f"seed suite over the draft backend (child pytest): {counts['passed']} passed, "
          f"{counts['failed']} failed, {counts['skipped']} skipped")

    failed = [f"{name}: {detail}" for name, (o, detail) in results.items() if o == "failed"]
    assert not failed, (f"{len(failed)} seed test(s) failed over the draft backend:\n\n"
                        + "\n\n".join(failed))
    assert proc.returncode == 0, out
    assert len(results) >= MIN_CHILD_TESTS, (
        f"the child ran only {len(results)} tests (expected >= {MIN_CHILD_TESTS})\n{out}")
    assert results.get("test_backend_is_the_one_under_test[v4]", ("",))[0] == "passed", \
        "the child did not prove it ran the draft backend"
    # Every seed test this process collected must have run in the child too.
    here = {i.name for i in request.session.items
            if i.path == pathlib.Path(__file__) and not i.name.startswith(PARENT_TEST)}
    missing = sorted(here - set(results))
    assert not missing, f"not run in the child: {missing}"
    skipped = [f"{name}: {detail}" for name, (o, detail) in results.items() if o == "skipped"]
    if skipped and _in_ci():
        pytest.fail("CI=true, yet seed tests skipped over the draft backend:\n"
                    + "\n".join(skipped))
