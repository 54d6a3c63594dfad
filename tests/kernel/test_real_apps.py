"""The command beside real applications, as a network engineer would use it:
iperf3 made MPTCP by ``mptcpize`` (Debian's ``mptcpd`` package), one of its subflows
steered from outside with ``mptcp sockopt``, ``mptcp record -- COMMAND`` around it, and
the ``mptcpd`` daemon as a second netlink user of the path manager.

Ground truth comes from the applications (iperf3's own byte counts and exit status)
and from ``ss`` and ``ip mptcp``, never from the library.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mptcp
from mptcp._lab import Lab
from tests.conftest import require_tool
from tests.outside import parse_ip_monitor_line, ss_subflow_text, start_ip_monitor

from .test_cli import _Lines, _argv, _env, _mptcp, _spawn

MPTCPD = "/usr/libexec/mptcpd"
PORT = 5201


@pytest.fixture
def apps() -> None:
    for tool in ("mptcpize", "iperf3", MPTCPD):
        require_tool(tool, "apt-get install mptcpd iperf3")


def _in(ns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


@pytest.fixture
def iperf3_server(lab: Lab, apps: None) -> Iterator[subprocess.Popen[str]]:
    """``mptcpize run iperf3 -s -1`` in the server namespace, listening."""
    proc = subprocess.Popen(_in(lab.server_ns, "mptcpize", "run", "iperf3", "-s", "-1",
                                "-p", str(PORT)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lab.wait_for(lambda: f":{PORT} " in lab.sh(lab.server_ns, "ss", "-MltnH")
                     or proc.poll() is not None, timeout=10, what="iperf3 to listen")
        assert proc.poll() is None, proc.communicate()
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def _iperf3_client(lab: Lab, seconds: int, *extra: str, rate: str = "200M") -> list[str]:
    # Paced, so two cores keep up with the test beside it.
    return ["mptcpize", "run", "iperf3", "-c", lab.server_addrs["v4"][0], "-p", str(PORT),
            "-t", str(seconds), "-b", rate, *extra]


def _acked(info: str) -> int:
    m = re.search(r"\bbytes_acked:(\d+)", info)
    return int(m.group(1)) if m else 0


def _hostport(addr: tuple[str, int], dev: str | None = None) -> str:
    host = f"[{addr[0]}]" if ":" in addr[0] else addr[0]
    return f"{host}{'%' + dev if dev else ''}:{addr[1]}"


def test_iperf3_with_one_subflow_steered_from_outside(lab: Lab, iperf3_server: Any) -> None:
    """iperf3's data connection gets its second subflow from the c2 endpoint; ``mptcp
    sockopt set`` gives that subflow alone another congestion control and a mark, and
    the transfer carries on over it to the end."""
    ns = lab.client_ns
    # 10 s: the subflow must outlive four `mptcp` commands and two `ss` runs, which
    # take seconds with the AddressSanitizer build of the core.
    client = subprocess.Popen(_in(ns, *_iperf3_client(lab, 10, "-J")), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        def data_subflows() -> list[dict[str, Any]]:
            # iperf3 opens a control connection and a data connection; the data one
            # is the connection whose subflows have moved megabytes.
            subs = [s for s in lab.ss_subflows(ns) if s["remote"][1] == PORT]
            busy = {s["token"] for s in subs if _acked(s["info"]) > 1_000_000}
            return [s for s in subs if s["token"] in busy] if len(busy) == 1 else []

        lab.wait_for(lambda: len(data_subflows()) == 2, timeout=10,
                     what="iperf3's data connection with two subflows")
        subs = sorted(data_subflows(), key=lambda s: s["loc_id"])
        first, joined = subs
        assert joined["loc_id"] == 1 and joined["local"][0] == lab.client_addrs["v4"][1]
        token = f"{joined['token']:08x}"
        where = (token, _hostport(joined["local"], "c2"), _hostport(joined["remote"]))

        res = _mptcp("sockopt", "get", *where, "congestion", ns=ns)
        assert res.returncode == 0, res.stderr
        before = res.stdout.split()[-1]
        target = "reno" if before != "reno" else "cubic"
        for option, value in (("congestion", target), ("mark", "0x2a")):
            res = _mptcp("sockopt", "set", *where, option, value, ns=ns)
            assert res.returncode == 0 and res.stderr == "", res.stderr
        acked_at_set = _acked(ss_subflow_text(lab, ns)[(joined["local"], joined["remote"])])

        text = ss_subflow_text(lab, ns)
        steered = text[(joined["local"], joined["remote"])]
        untouched = text[(first["local"], first["remote"])]
        assert f" {target} " in steered and "fwmark:0x2a" in steered
        assert f" {before} " in untouched and "fwmark" not in untouched
        res = _mptcp("sockopt", "get", *where, "congestion", ns=ns)
        assert res.returncode == 0 and res.stdout.split()[-1] == target, res

        out, err = client.communicate(timeout=30)
        assert client.returncode == 0, err
        report = json.loads(out)["end"]
        assert report["sum_received"]["bytes"] > 10_000_000
        # The steered subflow carried data after the change, until the end.
        after = ss_subflow_text(lab, ns).get((joined["local"], joined["remote"]))
        if after is not None:  # iperf3 may have closed it already
            assert _acked(after) > acked_at_set
    finally:
        if client.poll() is None:
            client.kill()
            client.communicate(timeout=10)
    assert iperf3_server.wait(10) == 0


def test_record_runs_iperf3_and_exits_with_its_status(lab: Lab, iperf3_server: Any,
                                                      tmp_path: Path) -> None:
    """``mptcp record -- mptcpize run iperf3 ...``: iperf3's output passes through, the
    recording holds iperf3's connections with the bytes iperf3 says it sent, and the
    exit status is iperf3's."""
    out = tmp_path / "iperf3.csv"
    res = subprocess.run(_argv("record", "-q", "-o", str(out), "--interval", "0.05", "--",
                               *_iperf3_client(lab, 3, "-J", rate="50M"),
                               ns=lab.client_ns),
                         capture_output=True, text=True, timeout=60, env=_env())
    assert res.returncode == 0, res.stderr
    sent = json.loads(res.stdout)["end"]["sum_sent"]["bytes"]
    assert sent > 10_000_000
    rows = list(csv.DictReader(out.read_text().splitlines()))
    acked: dict[str, int] = {}
    for row in rows:
        if row["remote"].endswith(f":{PORT}") and row["conn_bytes_acked"]:
            acked[row["token"]] = max(acked.get(row["token"], 0), int(row["conn_bytes_acked"]))
    assert len(acked) == 2, acked  # iperf3's control and data connections, no other
    data = max(acked.values())
    # The last sample is about one interval before the end (at 50 Mbit/s, 0.3 MB per
    # interval: 2 MB leaves room for five late or skipped samples); the data
    # connection also carries iperf3's 37-byte cookie.
    assert sent - 2_000_000 <= data <= sent + 37
    events = list(csv.DictReader(out.with_name("iperf3.events.csv").read_text().splitlines()))
    created = {e["token"] for e in events if e["type"] == "CREATED"}
    assert set(acked) <= created

    # iperf3 fails (nothing listens any more: -s -1 served one client) and says why;
    # the recorder exits with its status. Without -J: iperf3 3.12 exits 0 after a
    # refused connection when it writes JSON.
    assert iperf3_server.wait(10) == 0
    res = subprocess.run(_argv("record", "-q", "-o", str(tmp_path / "refused.csv"), "--",
                               *_iperf3_client(lab, 1), ns=lab.client_ns),
                         capture_output=True, text=True, timeout=60, env=_env())
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "refused" in res.stdout + res.stderr


@pytest.fixture
def mptcpd(lab: Lab, apps: None) -> Iterator[subprocess.Popen[str]]:
    """mptcpd in the client namespace, adding an endpoint for each address it sees."""
    proc = subprocess.Popen(_in(lab.client_ns, MPTCPD, "--log=stderr", "--path-manager=addr_adv",
                                "--addr-flags=subflow",
                                "--notify-flags=existing,skip_link_local,skip_loopback"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # The lab's own c2 endpoint plus c1 and the two IPv6 addresses.
        lab.wait_for(lambda: len(_ip_endpoints(lab)) == 4 or proc.poll() is not None,
                     timeout=10, what="mptcpd to add its endpoints")
        assert proc.poll() is None, proc.communicate()
        yield proc
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def _ip_endpoints(lab: Lab) -> list[str]:
    text = lab.ip(lab.client_ns, "mptcp", "endpoint", "show")
    return sorted(" ".join(line.split()) for line in text.splitlines() if line.strip())


def _our_endpoints(lab: Lab) -> list[str]:
    res = _mptcp("endpoint", "show", ns=lab.client_ns)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    return sorted(" ".join(line.split()) for line in res.stdout.splitlines() if line.strip())


def test_endpoints_beside_mptcpd(lab: Lab, mptcpd: Any) -> None:
    """What mptcpd adds, ``mptcp endpoint show`` lists as ``ip mptcp endpoint show``
    does, also after mptcpd reacts to a new address; and what our command changes,
    ip sees."""
    assert _our_endpoints(lab) == _ip_endpoints(lab)
    lab.ip(lab.client_ns, "addr", "add", f"10.{lab.net}.3.2/24", "dev", "c1")
    lab.wait_for(lambda: len(_ip_endpoints(lab)) == 5, timeout=10,
                 what="mptcpd to add the new address")
    assert _our_endpoints(lab) == _ip_endpoints(lab)
    assert any(line.startswith(f"10.{lab.net}.3.2 ") for line in _our_endpoints(lab))

    res = _mptcp("endpoint", "change", "id", "2", "backup", ns=lab.client_ns)
    assert res.returncode == 0, res.stderr
    (c1,) = [line for line in _ip_endpoints(lab) if line.startswith(f"10.{lab.net}.1.2 ")]
    assert " backup" in c1
    assert _our_endpoints(lab) == _ip_endpoints(lab)
    # An address mptcpd already added: refused in one line, nothing changed.
    before = _ip_endpoints(lab)
    res = _mptcp("endpoint", "add", f"10.{lab.net}.1.2", "dev", "c1", "subflow", ns=lab.client_ns)
    assert res.returncode == 1 and res.stdout == ""
    assert len(res.stderr.splitlines()) == 1 and res.stderr.startswith("mptcp endpoint: ")
    assert _ip_endpoints(lab) == before


def test_monitor_beside_mptcpd_and_ip(lab: Lab, mptcpd: Any) -> None:
    """Three listeners of the path manager's events group (mptcpd, ip mptcp monitor and
    ours) see the same events of a connection that gets subflows from mptcpd's
    endpoints."""
    ns = lab.client_ns
    server = lab.start_server()
    ipm, first = start_ip_monitor(lab, ns)
    proc = _spawn(ns, "monitor", "--json")
    try:
        lines = _Lines(proc)
        deadline = time.monotonic() + 15
        while not lines.lines:  # our monitor has joined the group once it prints
            assert time.monotonic() < deadline, "mptcp monitor never printed an event"
            lab.connect(port=server.port).close()
            lines.pump(0.2)
        sock = lab.connect(port=server.port)
        sock.sendall(b"m" * 4096)
        token = mptcp.info(sock).token
        lab.wait_for(lambda: len([s for s in lab.ss_subflows(ns) if s["token"] == token]) >= 2,
                     timeout=10, what="a second subflow from mptcpd's endpoints")
        sock.close()

        def ours(ls: list[str]) -> list[tuple[Any, ...]]:
            evs = [json.loads(x) for x in ls]
            return [(e["type"], tuple(e["local"]) if e.get("local") else None,
                     tuple(e["remote"]) if e.get("remote") else None)
                    for e in evs if e.get("token") == f"{token:08x}"]

        lines.wait(lambda ls: ("CLOSED", None, None) in ours(ls), 5.0, "CLOSED")
        lab.wait_for(lambda: any(l.startswith("[") and "CLOSED]" in l and f"{token:08x}" in l
                                 for l in ipm.lines[first:]), timeout=5, what="ip's CLOSED")
    finally:
        err = ipm.stop()
        if proc.poll() is None:
            proc.terminate()
            proc.wait(5)
    assert err == ""
    names = {1: "CREATED", 2: "ESTABLISHED", 3: "CLOSED", 10: "SUB_ESTABLISHED",
             11: "SUB_CLOSED", 13: "SUB_PRIORITY", 6: "ANNOUNCED", 7: "REMOVED"}
    theirs = []
    for line in ipm.lines[first:]:
        etype, tok, local, remote = parse_ip_monitor_line(line)
        if tok == token:
            theirs.append((names.get(etype, etype), local, remote))
    mine = ours(lines.lines)
    assert [t for t, *_ in mine] == [t for t, *_ in theirs]
    assert "SUB_ESTABLISHED" in [t for t, *_ in mine]
    for (t, local, remote), (_, ip_local, ip_remote) in zip(mine, theirs):
        if ip_local is not None:
            assert local == ip_local and remote == ip_remote, t
