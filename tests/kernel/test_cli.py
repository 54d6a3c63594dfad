"""The `mptcp` command, run as a subprocess like a user would."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fcntl
import pytest

import mptcp
from mptcp import diag
from mptcp.cli.monitor import event_json
from mptcp._lab import IPPROTO_MPTCP, Lab
from tests.outside import ss_mptcp

SRC = str(Path(mptcp.__file__).resolve().parents[1])


def _env() -> dict[str, str]:
    # Children import mptcp from where this process did.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([SRC, *filter(None, [env.get("PYTHONPATH")])])
    return env


def _argv(*args: str, ns: str | None = None, prefix: tuple[str, ...] = ()) -> list[str]:
    cmd = [*prefix, sys.executable, "-m", "mptcp", *args]
    return ["ip", "netns", "exec", ns, *cmd] if ns else cmd


def _mptcp(*args: str, ns: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    return subprocess.run(_argv(*args, ns=ns), capture_output=True, text=True, timeout=timeout,
                          env=_env())


def test_demo_end_to_end_leaves_no_namespace() -> None:
    res = _mptcp("demo", "--size", "12")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "open_sub -> Subflow(" in out and "backup=True" in out
    assert "cross-check with ss -tin: the same 2 subflow tuples" in out
    assert "matches what was sent" in out and "namespaces removed" in out
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "mptcpdemo" not in left


def test_limits_and_endpoints_json_match_ip(lab: Lab) -> None:
    ns = lab.client_ns
    assert _mptcp("limits", "set", "--subflows", "5", "--add-addr-accepted", "3", ns=ns).returncode == 0
    limits = json.loads(_mptcp("limits", "show", "--json", ns=ns).stdout)
    assert limits == {"subflows": 5, "add_addr_accepted": 3}
    assert "add_addr_accepted 3 subflows 5" in lab.ip(ns, "mptcp", "limits", "show")
    eps = json.loads(_mptcp("endpoint", "show", "--json", ns=ns).stdout)
    assert [e["addr"] for e in eps] == [lab.client_addrs["v4"][1]]  # the lab's endpoint
    assert _mptcp("endpoint", "flush", ns=ns).returncode == 0
    assert lab.ip(ns, "mptcp", "endpoint", "show").strip() == ""


def test_usage_error_exits_2() -> None:
    res = _mptcp("no-such-command")
    assert res.returncode == 2 and res.stdout == ""
    (line,) = res.stderr.splitlines()  # one line, for the script that ran it
    assert line.startswith("mptcp: ") and "invalid choice: 'no-such-command'" in line


# ---------------------------------------------------------------- ls, monitor, top

def _two_subflows(lab: Lab) -> socket.socket:
    """A client connection with its endpoint's second subflow, that one marked backup."""
    server = lab.start_server()
    sock = lab.connect(port=server.port)
    sock.sendall(b"x" * 2000)  # the in-kernel PM adds the endpoint's subflow after data
    lab.wait_for(lambda: len([s for s in lab.ss_subflows(lab.client_ns) if s["state"] == "ESTAB"]) == 2,
                 timeout=10.0, what="2 subflows")
    lab.ip(lab.client_ns, "mptcp", "endpoint", "change", "id", "1", "backup")
    return sock


def test_ls_json_matches_connections(lab: Lab) -> None:
    sock = _two_subflows(lab)
    ns = lab.client_ns
    res = _mptcp("ls", "--json", ns=ns, timeout=30)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    (c,) = lab.run_in(ns, diag.connections)
    assert len(got) == 1 and len(got[0]["subflows"]) == len(got[0]["subflow_diag"]) == 2
    (j,) = got
    # tokens are hex text in JSON too, as ss and ip mptcp monitor print them
    assert j["token"] == f"{c.token:08x}" == j["info"]["token"]
    assert {d["token"] for d in j["subflow_diag"]} == {j["token"]}
    ss_tokens = [x["token"] for x in ss_mptcp(lab, ns)]
    assert ss_tokens == [int(j["token"], 16)]
    assert (tuple(j["local"]), tuple(j["remote"])) == (c.local, c.remote)
    assert j["state"] == mptcp.TCPState.ESTABLISHED and j["info"]["fallback"] is False
    mine = sorted((tuple(s["local"]), tuple(s["remote"]), s["backup"], d["loc_id"], d["rem_id"], d["flags"])
                  for s, d in zip(j["subflows"], j["subflow_diag"]))
    lib = sorted((s.local, s.remote, s.backup, d.loc_id, d.rem_id, int(d.flags or 0))
                 for s, d in zip(c.subflows, c.subflow_diag))
    assert mine == lib
    assert [b for *_, b, _, _, _ in mine].count(True) == 1  # the endpoint's subflow
    assert all(isinstance(s["backup"], bool) for s in j["subflows"])
    assert set(j["subflows"][0]) == set(mptcp.SubflowInfo._fields)

    text = _mptcp("ls", ns=ns, timeout=30)
    assert text.returncode == 0, text.stderr
    assert f"{c.token:08x}" in text.stdout
    for s in c.subflows:
        assert s.local is not None
        line = next(ln for ln in text.stdout.splitlines()
                    if f" {s.local[0]}" in ln and f":{s.local[1]} ->" in ln)
        assert line.lstrip().startswith("B ") == bool(s.backup), line

    listening = json.loads(_mptcp("ls", "--json", "--listening", ns=lab.server_ns, timeout=30).stdout)
    assert sorted(x["state"] for x in listening) == [mptcp.TCPState.ESTABLISHED, mptcp.TCPState.LISTEN]
    sock.close()


class _Lines:
    """Lines of a child's stdout, read without blocking."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.fd = proc.stdout.fileno()
        self.buf = b""
        self.lines: list[str] = []

    def pump(self, timeout: float) -> None:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if ready:
            data = os.read(self.fd, 65536)
            self.buf += data
            *done, self.buf = self.buf.split(b"\n")
            self.lines += [d.decode() for d in done]

    def wait(self, pred: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not pred(self.lines):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {what} within {timeout}s: {self.lines!r}")
            self.pump(0.1)


def _probe_until(lab: Lab, port: int, lines: _Lines, pred: Any) -> None:
    """Open and close connections until the child reports one (it has subscribed)."""
    deadline = time.monotonic() + 15
    while not pred(lines.lines):
        assert time.monotonic() < deadline, "the monitor never reported an event"
        lab.connect(port=port).close()
        lines.pump(0.2)


@pytest.fixture
def sigint_default() -> Iterator[None]:
    """Children start with SIGINT at its default action, even if ours is ignored.

    A shell starts background jobs (``pytest ... &``) with SIGINT ignored, children
    inherit that, and Python then installs no KeyboardInterrupt handler: Ctrl-C
    would do nothing. A handler of ours is reset to the default across exec.
    """
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _spawn(ns: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(_argv(*args, ns=ns), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=_env())


def test_monitor_json_matches_events(lab: Lab) -> None:
    ns = lab.client_ns
    server = lab.start_server()
    proc = _spawn(ns, "monitor", "--json")
    try:
        lines = _Lines(proc)
        _probe_until(lab, server.port, lines, lambda ls: any('"CLOSED"' in x for x in ls))
        with lab.run_in(ns, mptcp.events) as mon:
            sock = lab.connect(port=server.port)
            token = mptcp.info(sock).token
            sock.sendall(b"x" * 2000)
            lab.wait_for(lambda: [len(c.subflows) for c in lab.run_in(ns, diag.connections)
                                  if c.token == token] == [2], timeout=10.0, what="2 subflows")
            sock.close()
            lib: list[dict[str, Any]] = []
            while not any(e["type"] == "CLOSED" for e in lib):
                ev = mon.read(timeout=5.0)
                if ev.token == token:
                    lib.append(event_json(ev))

        def mine(ls: list[str]) -> list[dict[str, Any]]:
            return [e for e in map(json.loads, ls) if e.get("token") == f"{token:08x}"]

        lines.wait(lambda ls: any(e["type"] == "CLOSED" for e in mine(ls)), 5.0, "CLOSED")
        assert mine(lines.lines) == lib
        assert [e["type"] for e in lib] == ["CREATED", "ESTABLISHED", "SUB_ESTABLISHED", "CLOSED"]
        sub = lib[2]
        assert sub["local"][0] == lab.client_addrs["v4"][1] and sub["loc_id"] == 1
        assert sub["backup"] is False
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
        assert time.monotonic() - t0 < 2
        assert proc.stderr is not None and proc.stderr.read() == b""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_monitor_text_and_sigint(lab: Lab, sigint_default: None) -> None:
    server = lab.start_server()
    proc = _spawn(lab.client_ns, "monitor")
    try:
        lines = _Lines(proc)
        _probe_until(lab, server.port, lines, lambda ls: any(x.startswith("CLOSED") for x in ls))
        created = next(x for x in lines.lines if x.startswith("CREATED"))
        assert "token=" in created and f"remote={lab.server_addrs['v4'][0]}:{server.port}" in created
        proc.send_signal(signal.SIGINT)
        assert proc.wait(5) == 0
        assert proc.stderr is not None and proc.stderr.read() == b""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_monitor_without_net_admin_exits_1(lab: Lab) -> None:
    argv = _argv("monitor", ns=lab.client_ns,
                 prefix=("setpriv", "--inh-caps=-all", "--bounding-set=-net_admin"))
    res = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=_env())
    assert res.returncode == 1
    assert res.stdout == ""
    (line,) = res.stderr.splitlines()
    assert line.startswith("mptcp monitor: ") and "CAP_NET_ADMIN" in line


@pytest.fixture
def transfer(lab: Lab) -> Iterator[socket.socket]:
    """A connection with 2 subflows (one backup) carrying a paced transfer."""
    sock = _two_subflows(lab)
    stop = threading.Event()

    def pump() -> None:
        chunk = b"z" * 65536
        try:
            while not stop.is_set():
                sock.sendall(chunk)
                time.sleep(0.005)
        except OSError:
            pass

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    yield sock
    stop.set()
    t.join(5)
    sock.close()


def test_top_once_json(lab: Lab, transfer: socket.socket) -> None:
    res = _mptcp("top", "--once", "--json", "--interval", "0.5", ns=lab.client_ns, timeout=30)
    assert res.returncode == 0, res.stderr
    snap = json.loads(res.stdout)
    (c,) = lab.run_in(lab.client_ns, diag.connections)
    assert snap["connections"] == 1 and 0.4 < snap["interval"] < 2
    rows = snap["subflows"]
    assert sorted((tuple(r["local"]), tuple(r["remote"]), r["backup"]) for r in rows) == \
        sorted((s.local, s.remote, s.backup) for s in c.subflows)
    assert all(r["token"] == f"{c.token:08x}" for r in rows)
    busiest = rows[0]
    assert busiest["backup"] is False and busiest["tx_rate"] > 100_000  # sorted by traffic
    assert busiest["local"] == list(transfer.getsockname()[:2])
    assert busiest["rtt_us"] is not None and busiest["snd_cwnd"] is not None


def _top_in_pty(lab: Lab, keys: bytes) -> tuple[int, bytes, float, list[Any]]:
    """Run `mptcp top` on a pseudo-terminal; once the tuples show, type ``keys``.

    Returns the exit status, the screen bytes, the seconds to exit after the keys,
    and the terminal's attributes after the exit.
    """
    argv = _argv("top", "--interval", "0.3", ns=lab.client_ns)
    env = {**_env(), "TERM": "xterm"}
    pid, master = pty.fork()
    if pid == 0:  # child: session leader with the pty as controlling terminal
        try:
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    out = b""
    want = [f"{lab.client_addrs['v4'][0]}:".encode(), f"{lab.client_addrs['v4'][1]}:".encode(),
            b"/s"]
    deadline = time.monotonic() + 15
    try:
        # wait for both tuples and a rate (the second frame)
        while not all(w in out for w in want) or out.count(b"\x1b[H") < 2:
            assert time.monotonic() < deadline, out[-2000:]
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                out += os.read(master, 65536)
        os.write(master, keys)
        t0 = time.monotonic()
        status = None
        while status is None and time.monotonic() - t0 < 5:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    out += os.read(master, 65536)
                except OSError:  # EIO: the child closed its side
                    pass
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
        took = time.monotonic() - t0
        assert status is not None, "mptcp top did not exit"
        after = termios.tcgetattr(master)  # the pty's modes as the child left them
        return os.waitstatus_to_exitcode(status), out, took, after
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(master)


@pytest.mark.parametrize("keys", [b"q", b"\x03"], ids=["q", "ctrl-c"])
def test_top_on_a_terminal(lab: Lab, transfer: socket.socket, keys: bytes,
                           sigint_default: None) -> None:
    code, screen, took, attrs = _top_in_pty(lab, keys)
    if os.environ.get("MPTCP_SHOW_TOP"):
        print(repr(screen[-1500:]))
    assert code == 0, screen[-2000:]
    assert took < 2.0
    assert attrs[3] & termios.ECHO and attrs[3] & termios.ICANON
    text = screen.decode(errors="replace")
    assert "\x1b[?1049h" in text and text.rstrip().endswith("\x1b[?25h\x1b[?1049l")
    (c,) = lab.run_in(lab.client_ns, diag.connections)
    for s in c.subflows:
        assert s.local is not None and s.remote is not None
        assert f"{s.local[0]}:{s.local[1]}" in text and f"{s.remote[0]}:{s.remote[1]}" in text
    assert "Traceback" not in text and "interrupted" not in text


# ------------------------------------------------- what the command shows, against ss

def _ss_raw(lab: Lab, ns: str, *args: str) -> list[list[str]]:
    """``ss ARGS -nH`` socket lines split into fields (info lines dropped)."""
    out = lab.sh(ns, "ss", *args, "-nH")
    return [line.split() for line in out.splitlines() if line and not line[0].isspace()]


def test_token_from_ls_json_selects_monitor_events(lab: Lab) -> None:
    # A token copied from `ls --json` (or ss, with 0x) is what --token takes.
    sock = _two_subflows(lab)
    srv = lab.server_ns
    (conn,) = json.loads(_mptcp("ls", "--json", ns=srv, timeout=30).stdout)
    token = conn["token"]
    assert isinstance(token, str) and len(token) == 8 and int(token, 16) > 0
    (ss_conn,) = ss_mptcp(lab, srv)
    assert ss_conn["token"] == int(token, 16)
    procs = [_spawn(srv, "monitor", "--json", "--token", t) for t in (token, "0x" + token.upper())]
    try:
        readers = [_Lines(p) for p in procs]
        # SUB_PRIORITY fires on the peer of the side that flips the flag: flip it on
        # the client until both monitors of the server have reported one.
        deadline = time.monotonic() + 20
        flag = "nobackup"
        while not all(any('"SUB_PRIORITY"' in x for x in r.lines) for r in readers):
            assert time.monotonic() < deadline, [r.lines for r in readers]
            for p in procs:
                assert p.poll() is None, p.stderr and p.stderr.read()
            lab.ip(lab.client_ns, "mptcp", "endpoint", "change", "id", "1", flag)
            flag = "backup" if flag == "nobackup" else "nobackup"
            for r in readers:
                r.pump(0.2)
        for r in readers:
            events = [json.loads(x) for x in r.lines]
            assert events and {e["token"] for e in events} == {token}
    finally:
        for p in procs:
            p.kill()
            p.wait()
    sock.close()


def test_usage_errors_for_tokens() -> None:
    for bad, why in (("123456789", "at most 8"), ("0x", "not a token"), ("-1", "not a token"),
                     ("dead_bee", "not a token"), ("0", "token 0")):
        res = _mptcp("monitor", "--token", bad, timeout=30)
        assert res.returncode == 2, (bad, res.stderr)
        assert why in res.stderr, res.stderr
        assert "does not fit in 32 bits" not in res.stderr


def test_ls_text_shows_device_binding_as_ss(lab: Lab) -> None:
    # The endpoint's subflow is bound to c2: ss prints 10.n.2.2%c2:PORT, so does ls.
    sock = _two_subflows(lab)
    ns = lab.client_ns
    bound = [f[3] for f in _ss_raw(lab, ns, "-ti") if "%" in f[3]]
    assert len(bound) == 1 and bound[0].startswith(lab.client_addrs["v4"][1] + "%c2:"), bound
    text = _mptcp("ls", ns=ns, timeout=30)
    assert text.returncode == 0, text.stderr
    assert f"{bound[0]} ->" in text.stdout, text.stdout
    sock.close()


def test_fallback_is_marked_in_ls_and_top(lab: Lab) -> None:
    # An MPTCP client against a plain TCP server falls back; ss says "fallback".
    plain = lab.start_server(proto=socket.IPPROTO_TCP)
    fell = lab.connect(port=plain.port)
    fell.sendall(b"x" * 2000)
    mp = lab.start_server()
    real = lab.connect(port=mp.port)
    real.sendall(b"x" * 2000)
    ns = lab.client_ns
    ss = {c["local"]: c["info"] for c in ss_mptcp(lab, ns)}
    fell_local, real_local = fell.getsockname()[:2], real.getsockname()[:2]
    assert "fallback" in ss[fell_local] and "fallback" not in ss[real_local]

    text = _mptcp("ls", ns=ns, timeout=30).stdout.splitlines()
    (fell_line,) = [x for x in text if f"  {fell_local[0]}:{fell_local[1]}  " in x]
    (real_line,) = [x for x in text if f"  {real_local[0]}:{real_local[1]}  " in x]
    assert fell_line.endswith("  fallback") and "fallback" not in real_line

    res = _mptcp("top", "--once", "--interval", "0.2", ns=ns, timeout=30)
    assert res.returncode == 0, res.stderr
    rows = {tuple(x.split()[1].rsplit(":", 1)): x for x in res.stdout.splitlines()[2:] if x.strip()}
    assert rows[(fell_local[0], str(fell_local[1]))].endswith("fallback")
    assert "fallback" not in rows[(real_local[0], str(real_local[1]))]
    snap = json.loads(_mptcp("top", "--once", "--json", "--interval", "0.2", ns=ns, timeout=30).stdout)
    by_local = {tuple(r["local"]): r["fallback"] for r in snap["subflows"]}
    assert by_local[fell_local] is True and by_local[real_local] is False
    fell.close()
    real.close()


def test_ls_shows_subflows_that_outlive_their_connection(lab: Lab) -> None:
    # Path 2 drops everything, the endpoint is removed: its subflow sends a FIN
    # nobody acknowledges. Once the application closes the connection, that subflow
    # stays in FIN-WAIT-1 without an MPTCP socket; ss -tiM lists it.
    sock = _two_subflows(lab)
    ns = lab.client_ns
    token = mptcp.info(sock).token
    lab.ip(lab.server_ns, "link", "set", "s2", "down")
    lab.ip(ns, "mptcp", "endpoint", "del", "id", "1")
    sock.close()

    def orphan() -> Any:
        if ss_mptcp(lab, ns):
            return None  # the MPTCP socket is not gone yet
        subs = [s for s in lab.ss_subflows(ns) if s["token"] == token]
        return subs if subs and all(s["state"] == "FIN-WAIT-1" for s in subs) else None
    (sub,) = lab.wait_for(orphan, timeout=10.0, what="a FIN-WAIT-1 subflow without its connection")

    text = _mptcp("ls", ns=ns, timeout=30)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    (head,) = [x for x in lines if x.startswith(f"{token:08x}")]
    assert head.split()[1] == "CLOSE" and " gone " in head, text.stdout
    local = f"{sub['local'][0]}%c2:{sub['local'][1]}"
    (row,) = [x for x in lines if f"{local} ->" in x]
    assert f"{sub['remote'][0]}:{sub['remote'][1]}  FIN_WAIT1" in row, row

    (entry,) = json.loads(_mptcp("ls", "--json", ns=ns, timeout=30).stdout)
    assert entry["token"] == f"{token:08x}" and entry["state"] == mptcp.TCPState.CLOSE
    assert entry["info"] is None and entry["local"] is None
    assert [tuple(s["local"]) for s in entry["subflows"]] == [sub["local"]]
    assert [s["state"] for s in entry["subflows"]] == [mptcp.TCPState.FIN_WAIT1]


def test_ls_says_when_mptcp_is_disabled(lab: Lab) -> None:
    ns = lab.client_ns
    lab.sh(ns, "sysctl", "-q", "-w", "net.mptcp.enabled=0")
    res = _mptcp("ls", ns=ns, timeout=30)
    assert res.returncode == 0, res.stderr
    assert "MPTCP is disabled in this network namespace (net.mptcp.enabled = 0" in res.stdout
    js = _mptcp("ls", "--json", ns=ns, timeout=30)
    assert js.stdout.strip() == "[]" and "MPTCP is disabled" in js.stderr
    lab.sh(ns, "sysctl", "-q", "-w", "net.mptcp.enabled=1")
    assert _mptcp("ls", ns=ns, timeout=30).stdout.strip() == \
        "no MPTCP connections in this network namespace"


# ---------------------------------------------------------------- exit codes

def test_demo_bad_size_is_a_usage_error_before_any_namespace() -> None:
    for size in ("0", "-5", "4097", "x"):
        t0 = time.monotonic()
        res = _mptcp("demo", "--size", size, timeout=30)
        assert res.returncode == 2, (size, res.stderr)
        assert "--size" in res.stderr and time.monotonic() - t0 < 3
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert "mptcpdemo" not in left


def test_library_argument_error_is_a_usage_error(lab: Lab) -> None:
    # The library refuses id 300 before any syscall (ValueError): the user's input.
    res = _mptcp("endpoint", "del", "300", ns=lab.client_ns, timeout=30)
    assert res.returncode == 2, res.stderr
    (line,) = res.stderr.splitlines()
    assert line.startswith("mptcp endpoint") and "id 300 is outside 0-255" in line
    # a failure of the kernel's (no such endpoint) stays a runtime failure
    res = _mptcp("endpoint", "del", "200", ns=lab.client_ns, timeout=30)
    assert res.returncode == 1, res.stderr


# ---------------------------------------------------------------- monitor's buffer

def _netlink_drops(lab: Lab, ns: str, pid: int) -> int:
    """Drops the kernel counted on the event socket of process ``pid`` (the
    ``Drops`` column of /proc/net/netlink: sk Eth Pid Groups Rmem Wmem Dump Locks
    Drops Inode)."""
    rows = [r.split() for r in lab.sh(ns, "cat", "/proc/net/netlink").splitlines()[1:]]
    (row,) = [r for r in rows if r[1] == "16" and int(r[2]) == pid and int(r[3], 16)]
    return int(row[8])


def _stalled_burst(lab: Lab, port: int, n: int, *args: str) -> tuple[list[str], str, int]:
    """``mptcp monitor ARGS`` stopped (SIGSTOP) while ``n`` connections open and
    close, then resumed: its lines, its stderr and the kernel's drop count."""
    ns = lab.client_ns
    proc = _spawn(ns, "monitor", *args)
    try:
        lines = _Lines(proc)
        _probe_until(lab, port, lines, lambda ls: bool(ls))
        proc.send_signal(signal.SIGSTOP)
        tokens = []
        for _ in range(n):
            s = lab.connect(port=port)
            tokens.append(mptcp.info(s).token)
            s.close()
        time.sleep(0.3)
        drops = _netlink_drops(lab, ns, proc.pid)  # ip netns exec execs python: same pid
        proc.send_signal(signal.SIGCONT)
        last = f"token={tokens[-1]:08x}"
        lines.wait(lambda ls: any(x.startswith("EVENTS_LOST") for x in ls)
                   or any(x.startswith("CLOSED") and last in x for x in ls), 10.0, "the burst")
        time.sleep(0.2)
        lines.pump(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    assert proc.returncode == 0 and proc.stderr is not None
    return lines.lines, proc.stderr.read().decode(), drops


def test_monitor_buffer_holds_a_burst_and_rcvbuf_sets_it(lab: Lab) -> None:
    server = lab.start_server()
    # 150 connections stalled: about 400 KB of events, twice what the kernel's
    # default buffer holds (net.core.rmem_default, doubled: 212992 bytes here)
    lines, err, drops = _stalled_burst(lab, server.port, 150)
    assert drops == 0 and err == ""
    assert not any(x.startswith("EVENTS_LOST") for x in lines)
    assert sum(x.startswith("CLOSED") for x in lines) >= 150

    # --rcvbuf asks for a buffer: the kernel's default size loses part of the burst;
    # the gap is marked, and the message names the command's option
    lines, err, drops = _stalled_burst(lab, server.port, 150, "--rcvbuf", "106496")
    assert drops > 0
    assert any(x.startswith("EVENTS_LOST") for x in lines)
    (msg,) = err.splitlines()
    assert msg.startswith("mptcp monitor: the kernel dropped MPTCP events") and "--rcvbuf" in msg
    assert "rcvbuf=" not in msg and "events()" not in msg


# ---------------------------------------------------------------- processes (-p)

_HOLDER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
s.connect((sys.argv[1], int(sys.argv[2])))
print("%s:%d" % s.getsockname()[:2], flush=True)
time.sleep(60)
"""


def _ss_users(lab: Lab, ns: str, local: str) -> str:
    """``users:((...))`` of the MPTCP socket at ``local`` as ``ss -Mnp`` prints it."""
    for line in lab.sh(ns, "ss", "-MnpH").splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[3] == local:
            return fields[-1]
    raise AssertionError(f"ss -Mnp shows no MPTCP socket at {local}")


def test_ls_and_top_name_the_process_holding_a_connection(lab: Lab) -> None:
    ns = lab.client_ns
    server = lab.start_server()
    # The holder runs as another user (nobody), with the system's interpreter: it
    # needs only the socket module, and nobody may not read a private venv.
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    holder = subprocess.Popen(["ip", "netns", "exec", ns, "setpriv", "--reuid=65534",
                               "--regid=65534", "--clear-groups", python, "-c", _HOLDER,
                               lab.server_addrs["v4"][0], str(server.port)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        local = holder.stdout.readline().strip()
        users = _ss_users(lab, ns, local)  # users:(("python",pid=123,fd=3))
        name = users.split('"')[1]
        assert f"pid={holder.pid}," in users
        ours = f'users:(("{name}",pid={holder.pid}))'  # ss's, without the fd

        plain = _mptcp("ls", ns=ns, timeout=30)
        assert plain.returncode == 0 and "users:" not in plain.stdout
        for flag in ("-p", "--processes"):
            res = _mptcp("ls", flag, ns=ns, timeout=30)
            assert res.returncode == 0, res.stderr
            (line,) = [x for x in res.stdout.splitlines() if f"  {local}  " in x]
            assert line.endswith("  " + ours), line
        conns = json.loads(_mptcp("ls", "--json", "-p", ns=ns, timeout=30).stdout)
        (conn,) = [c for c in conns if c["local"] == [local.rsplit(":")[0], int(local.rsplit(":")[1])]]
        assert conn["processes"] == [{"pid": holder.pid, "name": name}]
        assert "processes" not in json.loads(_mptcp("ls", "--json", ns=ns, timeout=30).stdout)[0]

        res = _mptcp("top", "--once", "-p", "--interval", "0.2", ns=ns, timeout=30)
        assert res.returncode == 0, res.stderr
        head, *rows = res.stdout.splitlines()[1:]
        assert head.endswith("  PROCESS")
        assert [r for r in rows if f"  {local}  " in r][0].endswith("  " + ours)
        snap = json.loads(_mptcp("top", "--once", "-p", "--json", "--interval", "0.2",
                                 ns=ns, timeout=30).stdout)
        (row,) = [r for r in snap["subflows"] if r["local"] == conn["local"]]
        assert row["processes"] == [{"pid": holder.pid, "name": name}]

        # Without CAP_SYS_PTRACE root may not read another user's /proc/PID/fd: no
        # owner shown and no error, as ss does.
        blind = subprocess.run(_argv("ls", "-p", ns=ns, prefix=(
            "setpriv", "--inh-caps=-sys_ptrace", "--bounding-set=-sys_ptrace")),
            capture_output=True, text=True, timeout=30, env=_env())
        assert blind.returncode == 0 and blind.stderr == "", blind.stderr
        assert local in blind.stdout and "users:" not in blind.stdout
    finally:
        holder.kill()
        holder.wait()
