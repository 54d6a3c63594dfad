"""mptcp.connections() and the sock_diag subflow lookup on the real kernel.

Checked against ``ss -tiMn``/``ss -MinH`` inside the lab's namespaces: count,
tokens, tuples, address ids and backup flags, for one and for 200 connections; the
lookup of a device-bound subflow and of a backup flag flipped by ``ip mptcp
endpoint change``; and the unprivileged view (a child without CAP_NET_ADMIN).
"""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

import mptcp
from mptcp import diag
from mptcp._backends.upstream import read as _read
from mptcp._lab import Lab
from tests.outside import ss_mptcp

SRC = str(Path(diag.__file__).resolve().parents[1])


@pytest.fixture(autouse=True, scope="module")
def _nofile() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 8192) if hard != resource.RLIM_INFINITY else 8192
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _open(lab: Lab, n: int, family: int = socket.AF_INET) -> Tuple[Any, List[socket.socket]]:
    server = lab.start_server(family=family)
    socks = []
    for _ in range(n):
        s = lab.connect(family=family, port=server.port)
        s.sendall(b"x" * 2000)  # the in-kernel PM adds the endpoint's subflow after data
        socks.append(s)
    return server, socks


def _wait_subflows(lab: Lab, ns: str, want: int) -> List[Dict[str, Any]]:
    def ready() -> Any:
        subs = [s for s in lab.ss_subflows(ns) if s["state"] == "ESTAB"]
        return subs if len(subs) >= want else None
    return lab.wait_for(ready, timeout=30.0, interval=0.1, what=f"{want} subflows in {ns}")


def _compare_with_ss(lab: Lab, ns: str, expect_conns: int, expect_subflows: int) -> List[Any]:
    ss_conns = [c for c in ss_mptcp(lab, ns) if c["state"] == "ESTAB"]
    ss_subs = [s for s in lab.ss_subflows(ns) if s["state"] == "ESTAB"]
    ours = lab.run_in(ns, diag.connections)
    assert len(ours) == len(ss_conns) == expect_conns
    assert sorted((c.token, c.local, c.remote) for c in ours) == \
        sorted((c["token"], c["local"], c["remote"]) for c in ss_conns)
    our_subs = sorted(
        (d.local, d.remote, d.token, d.loc_id, d.rem_id, s.backup, bool(d.flags & diag.SubflowFlags.BKUP_REM))
        for c in ours for s, d in zip(c.subflows, c.subflow_diag))
    ss_view = sorted(
        (s["local"], s["remote"], s["token"], s["loc_id"], s["rem_id"], s["backup_local"],
         s["backup_remote"]) for s in ss_subs)
    assert len(our_subs) == len(ss_view) == expect_subflows
    assert our_subs == ss_view
    for c in ours:
        assert isinstance(c, diag.Connection) and isinstance(c.info, mptcp.MPTCPInfo)
        assert c.state == mptcp.TCPState.ESTABLISHED and c.info.token == c.token
        assert len(c.subflows) == len(c.subflow_diag) == c.info.subflows_total
        for s, d in zip(c.subflows, c.subflow_diag):
            assert isinstance(s, mptcp.SubflowInfo) and isinstance(d, diag.DiagSubflow)
            assert s.local == d.local and s.remote == d.remote and d.token == c.token
            assert s.state == mptcp.TCPState.ESTABLISHED and s.backup is not None
            assert d.flags & diag.SubflowFlags.FULLY_ESTABLISHED
    return ours


def test_one_connection_matches_ss(lab: Lab) -> None:
    _, socks = _open(lab, 1)
    _wait_subflows(lab, lab.client_ns, 2)
    _wait_subflows(lab, lab.server_ns, 2)
    ours = _compare_with_ss(lab, lab.client_ns, 1, 2)
    (c,) = ours
    assert c.local == socks[0].getsockname()[:2] and c.remote == socks[0].getpeername()[:2]
    assert c.inode == os.fstat(socks[0].fileno()).st_ino
    by_loc = {d.loc_id: d for d in c.subflow_diag}
    assert by_loc[0].flags & diag.SubflowFlags.MCAP_LOC and by_loc[0].if_index == 0
    assert by_loc[1].flags & diag.SubflowFlags.JOIN_LOC
    assert by_loc[1].if_index == lab.ifindex(lab.client_ns, "c2")  # the endpoint's dev
    assert by_loc[1].local[0] == lab.client_addrs["v4"][1]
    # the server side sees the same connection from the other end
    (srv,) = _compare_with_ss(lab, lab.server_ns, 1, 2)
    assert srv.remote == c.local
    # and the calling thread's own namespace (the test's) sees none of it
    assert all(x.token != c.token for x in diag.connections())
    for s in socks:
        s.close()


def test_200_connections_match_ss(lab: Lab) -> None:
    _, socks = _open(lab, 200)
    _wait_subflows(lab, lab.client_ns, 400)
    _compare_with_ss(lab, lab.client_ns, 200, 400)
    _wait_subflows(lab, lab.server_ns, 400)
    _compare_with_ss(lab, lab.server_ns, 200, 400)
    for s in socks:
        s.close()


def test_ipv6_connection(lab: Lab) -> None:
    # the lab's endpoint is IPv4; an IPv6 connection needs an IPv6 one on c2
    lab.ip(lab.client_ns, "mptcp", "endpoint", "add", lab.client_addrs["v6"][1], "dev", "c2",
           "subflow")
    _, socks = _open(lab, 1, socket.AF_INET6)
    _wait_subflows(lab, lab.client_ns, 2)
    (c,) = _compare_with_ss(lab, lab.client_ns, 1, 2)
    assert c.family == socket.AF_INET6 and c.local == socks[0].getsockname()[:2]
    assert {s.local[0] for s in c.subflows} == set(lab.client_addrs["v6"])
    for s in socks:
        s.close()


def test_listening(lab: Lab) -> None:
    server, socks = _open(lab, 1)
    _wait_subflows(lab, lab.server_ns, 2)
    plain = lab.run_in(lab.server_ns, diag.connections)
    assert all(c.state != mptcp.TCPState.LISTEN for c in plain)
    with_listeners = lab.run_in(lab.server_ns, diag.connections, listening=True)
    listeners = [c for c in with_listeners if c.state == mptcp.TCPState.LISTEN]
    assert [(c.local[1], c.subflows) for c in listeners] == [(server.port, [])]
    assert len(with_listeners) == len(plain) + 1
    for s in socks:
        s.close()


def _device_subflow(lab: Lab) -> Dict[str, Any]:
    subs = _wait_subflows(lab, lab.client_ns, 2)
    (sub,) = [s for s in subs if s["local"][0] == lab.client_addrs["v4"][1]]
    return sub


def test_subflow_flags_device_bound_and_backup_flip(lab: Lab) -> None:
    _, socks = _open(lab, 1)
    sub = _device_subflow(lab)
    res = lab.run_in(lab.client_ns, _read.subflow_flags, socket.AF_INET, sub["local"], sub["remote"])
    assert res is not None
    flags, loc_id, rem_id, token = res
    assert (loc_id, rem_id, token) == (sub["loc_id"], sub["rem_id"], sub["token"])
    assert loc_id == 1 and flags & diag.SubflowFlags.JOIN_LOC
    assert not flags & diag.SubflowFlags.BKUP_LOC and "b" not in sub["flags"]

    lab.ip(lab.client_ns, "mptcp", "endpoint", "change", "id", "1", "backup")
    # ss shows the local backup flag ("b") at once: MP_PRIO was sent by the change
    after = _device_subflow(lab)
    assert "b" in after["flags"], after["info"]
    flags2, *_ = lab.run_in(lab.client_ns, _read.subflow_flags, socket.AF_INET,
                            sub["local"], sub["remote"])
    assert flags2 & diag.SubflowFlags.BKUP_LOC
    (c,) = lab.run_in(lab.client_ns, diag.connections)
    backup = {s.local: s.backup for s in c.subflows}
    assert backup == {sub["local"]: True, socks[0].getsockname()[:2]: False}
    # the peer sees the flag as the remote's backup bit
    def peer_sees() -> bool:
        subs = lab.ss_subflows(lab.server_ns)
        return any(s["remote"] == sub["local"] and s["backup_remote"] for s in subs)
    lab.wait_for(peer_sees, timeout=5.0, what="BKUP_REM on the server")
    lab.ip(lab.client_ns, "mptcp", "endpoint", "change", "id", "1", "nobackup")
    flags3, *_ = lab.run_in(lab.client_ns, _read.subflow_flags, socket.AF_INET,
                            sub["local"], sub["remote"])
    assert not flags3 & diag.SubflowFlags.BKUP_LOC
    # wrong tuple / other namespace: None
    assert lab.run_in(lab.client_ns, _read.subflow_flags, socket.AF_INET, sub["local"],
                      (sub["remote"][0], sub["remote"][1] ^ 1)) is None
    assert _read.subflow_flags(socket.AF_INET, sub["local"], sub["remote"]) is None
    for s in socks:
        s.close()


_CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import mptcp
from mptcp import diag
out = []
for c in diag.connections():
    out.append({"token": c.token, "local": c.local, "remote": c.remote,
                "info_token": c.info.token if c.info else None,
                "subflows": [{"local": s.local, "backup": s.backup, "rtt": s.rtt_us,
                              "flags": None if d.flags is None else int(d.flags),
                              "loc_id": d.loc_id, "map_seq": d.map_seq,
                              "ssn_offset": d.ssn_offset} for s, d in zip(c.subflows, c.subflow_diag)]})
print(json.dumps(out))
"""


def test_unprivileged(lab: Lab) -> None:
    _, socks = _open(lab, 1)
    _wait_subflows(lab, lab.client_ns, 2)
    proc = subprocess.run(
        ["ip", "netns", "exec", lab.client_ns, "setpriv", "--inh-caps=-all",
         "--bounding-set=-net_admin", sys.executable, "-c", _CHILD, SRC],
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    (c,) = json.loads(proc.stdout)
    (priv,) = lab.run_in(lab.client_ns, diag.connections)
    assert c["token"] == priv.token == c["info_token"]
    assert tuple(c["local"]) == priv.local and len(c["subflows"]) == 2
    for s in c["subflows"]:
        assert s["flags"] is not None and s["loc_id"] is not None and s["backup"] is False
        assert s["rtt"] is not None
        # sequence numbers are CAP_NET_ADMIN only
        assert s["map_seq"] is None and s["ssn_offset"] is None
    assert all(d.map_seq is not None and d.ssn_offset is not None for d in priv.subflow_diag)
    for s in socks:
        s.close()


def test_orphaned_subflow_listed_with_orphans(lab: Lab) -> None:
    # Path 2 goes dead and its endpoint is removed: the subflow's FIN is never
    # acknowledged. After the application closes the connection, the subflow stays
    # in FIN-WAIT-1 without an MPTCP socket; ss -tiM lists it with the old token.
    _, socks = _open(lab, 1)
    ns = lab.client_ns
    _wait_subflows(lab, ns, 2)
    token = mptcp.info(socks[0]).token
    lab.ip(lab.server_ns, "link", "set", "s2", "down")
    lab.ip(ns, "mptcp", "endpoint", "del", "id", "1")
    socks[0].close()

    def orphan() -> Any:
        if ss_mptcp(lab, ns):
            return None
        subs = [s for s in lab.ss_subflows(ns) if s["token"] == token]
        return subs if subs and all(s["state"] == "FIN-WAIT-1" for s in subs) else None
    (sub,) = lab.wait_for(orphan, timeout=10.0, what="a FIN-WAIT-1 subflow without its connection")

    assert lab.run_in(ns, diag.connections) == []  # the default view is unchanged
    (gone,) = lab.run_in(ns, diag.connections, orphans=True)
    assert gone.state == mptcp.TCPState.CLOSE and gone.token == token
    assert (gone.local, gone.remote, gone.info, gone.inode) == (None, None, None, 0)
    (s,) = gone.subflows
    (d,) = gone.subflow_diag
    assert (s.local, s.remote, s.state) == (sub["local"], sub["remote"], mptcp.TCPState.FIN_WAIT1)
    assert (d.token, d.loc_id, d.rem_id) == (sub["token"], sub["loc_id"], sub["rem_id"])
    assert d.if_index == lab.ifindex(ns, "c2")
    with pytest.raises(TypeError):
        diag.connections(orphans=1)  # type: ignore[arg-type]


def test_records_of_values_are_not_tracked_and_gc_stays_on(lab: Lab) -> None:
    """connections() leaves the collector alone (it switched it off for the whole
    process during the call): its records of values are untracked instead, so
    thousands of them trigger no full collections."""
    import gc
    import threading

    _, socks = _open(lab, 20)
    _wait_subflows(lab, lab.client_ns, 40)
    seen_off = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if not gc.isenabled():
                seen_off.append(1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(200):
            conns = lab.run_in(lab.client_ns, diag.connections)
    finally:
        stop.set()
        watcher.join(10)
    assert seen_off == [] and gc.isenabled()
    c = conns[0]
    assert gc.is_tracked(c) and gc.is_tracked(c.subflows)  # mutable lists: tracked
    for s, d in zip(c.subflows, c.subflow_diag):
        assert not any(gc.is_tracked(x) for x in (s, d, s.local, s.remote, d.local))
    assert not gc.is_tracked(c.info)
    for s in socks:
        s.close()


def test_the_kernel_is_asked_not_uname(lab: Lab) -> None:
    # A kernel release string says nothing of what the kernel was built with (and
    # distributions backport): only the kernel's answer counts. A fresh process, so
    # that nothing was learnt before the release string is made old.
    _, socks = _open(lab, 1)
    code = ("import os, sys; sys.path.insert(0, sys.argv[1]); "
            "os.uname = lambda: os.uname_result(('Linux', 'h', '5.4.0-old', '#1', 'x86_64')); "
            "from mptcp import diag; print(len(diag.connections()))")
    proc = subprocess.run(["ip", "netns", "exec", lab.client_ns, sys.executable, "-c", code, SRC],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "1", proc.stderr
    for s in socks:
        s.close()
