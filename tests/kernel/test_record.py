"""`mptcp record`, `mptcp plot`, `mptcp.record()` and `mptcp demo --record` on the
real kernel, in private namespaces. Ground truth comes from outside the library:
``ss -tinH`` for subflows and counters, ``ip mptcp monitor`` for events, the
sockets' own addresses and the bytes the test itself sent."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional

import pytest

import mptcp
from mptcp._procs import process_tree
from mptcp._recording import load
from mptcp._lab import Lab
from tests.outside import parse_ip_monitor_line, ss_mptcp, start_ip_monitor
from mptcp.pm import PathManager

from .test_cli import _argv, _env, sigint_default  # noqa: F401  (sigint_default: a fixture)

CHUNK = b"r" * 65536


class Pump(threading.Thread):
    """Sends 64 KiB every ``pace`` seconds (about 4 MB/s) until told to stop; counts bytes."""

    def __init__(self, sock: socket.socket, pace: float = 0.015) -> None:
        super().__init__(daemon=True)
        self.sock, self.pace = sock, pace
        self.sent = 0
        self.halt = threading.Event()

    def run(self) -> None:
        try:
            while not self.halt.is_set():
                self.sock.sendall(CHUNK)
                self.sent += len(CHUNK)
                time.sleep(self.pace)
        except OSError:
            pass

    def stop(self) -> None:
        self.halt.set()
        self.join(10)


def _spawn_record(ns: str, *args: str, prefix: tuple[str, ...] = ()) -> subprocess.Popen[str]:
    return subprocess.Popen(_argv("record", *args, ns=ns, prefix=prefix), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())


def _rows(path: Path) -> list[dict[str, str]]:
    text = path.read_text()
    assert text.endswith("\n"), "the file ends inside a row"
    return list(csv.DictReader(text.splitlines()))


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def _ss_counter(info: str, name: str) -> int:
    m = re.search(rf"\b{name}:(\d+)", info)
    return int(m.group(1)) if m else 0


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[int, str, str]:
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out, err


def _summary(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("mptcp record: ") and " rows in " in line]
    assert len(lines) == 1, err
    return lines[0]


def _moved(rows: list[dict[str, str]], key: tuple[str, str], t0: float, t1: float) -> int:
    """Bytes acked on subflow ``key`` between the samples nearest after t0 and before t1."""
    mine = [r for r in rows if (r["local"], r["remote"]) == key and t0 <= float(r["time"]) <= t1]
    if len(mine) < 2:
        return 0
    return int(mine[-1]["bytes_acked"]) - int(mine[0]["bytes_acked"])


def test_record_a_failover(lab_userspace: Lab, tmp_path: Path) -> None:
    """A transfer over path 1, a backup subflow over path 2, path 1 taken down, the dead
    initial subflow closed: all of it in the files, checked against ss and ip monitor."""
    lab = lab_userspace
    ns = lab.client_ns
    out = tmp_path / "run.csv"
    ipm, first = start_ip_monitor(lab, ns)
    rec = _spawn_record(ns, "-o", str(out), "--interval", "0.05")
    pump: Optional[Pump] = None
    try:
        lab.wait_for(lambda: (tmp_path / "run.meta.json").exists() or rec.poll() is not None,
                     timeout=20, what="the recorder to start")
        assert rec.poll() is None, rec.communicate()
        server = lab.start_server()
        sock = lab.connect(port=server.port, timeout=30)
        pump = Pump(sock)
        pump.start()
        lab.wait_for(lambda: (mptcp.info(sock).bytes_acked or 0) > 0, what="data acked")
        c2, s2 = lab.client_addrs["v4"][1], lab.server_addrs["v4"][1]
        backup = lab.run_in(ns, mptcp.open_sub, sock, local=c2, remote=(s2, server.port),
                            backup=True)
        during = {(s["local"], s["remote"]) for s in lab.ss_subflows(ns) if s["state"] == "ESTAB"}
        assert len(during) == 2
        initial = next(s for s in mptcp.subflows(sock) if s.id != backup.id)
        lab.wait_for(lambda: _acked(sock, initial.id) > 2 * 2**20, timeout=20, what="2 MiB on path 1")

        down_at = time.monotonic()
        lab.ip(ns, "link", "set", "c1", "down")
        lab.wait_for(lambda: _acked(sock, backup.id) > 2 * 2**20, timeout=30,
                     what="2 MiB on the backup")
        moved_at = time.monotonic()
        token = mptcp.info(sock).token
        with lab.run_in(ns, PathManager) as pm:  # the dead subflow: SUB_CLOSED
            lab.run_in(ns, pm.destroy_subflow, token, initial.local, initial.remote)
        done = _acked(sock, backup.id)
        lab.wait_for(lambda: _acked(sock, backup.id) > done + 2**20, timeout=30,
                     what="1 MiB more on the backup")
        pump.stop()
        # Quiet: everything sent is acked, so ss and the last sample see the same counters.
        lab.wait_for(lambda: mptcp.info(sock).bytes_acked == pump.sent, timeout=30, what="all acked")
        code, _, err = _stop(rec)
        ss_end = {(s["local"], s["remote"]): s for s in lab.ss_subflows(ns)}
        monitor_err = ipm.stop()
        assert code == 0, err
        summary = _summary(err)
        sock.close()
    finally:
        if pump is not None:
            pump.stop()
        if rec.poll() is None:
            rec.kill()
            rec.wait()
        ipm.stop()

    rows = _rows(out)
    meta = json.loads((tmp_path / "run.meta.json").read_text())
    ours = [r for r in rows if r["token"] == f"{token:08x}"]
    seen = {(_addr(r["local"]), _addr(r["remote"])) for r in ours}
    assert seen == during  # every subflow appears
    assert f"{len(rows)} rows in" in summary and meta["rows"] == len(rows)

    # The last sample against ss -ti taken right after the recorder stopped.
    last_t = ours[-1]["time"]
    last = [r for r in ours if r["time"] == last_t]
    compared = 0
    for r in last:
        s = ss_end.get((_addr(r["local"]), _addr(r["remote"])))
        if s is None:
            continue
        for field in ("bytes_acked", "bytes_sent"):
            theirs = _ss_counter(s["info"], field)
            assert abs(int(r[field]) - theirs) <= 0.01 * theirs, (field, r, s["info"])
        compared += 1
    assert compared >= 1 and any(_addr(r["local"])[0] == c2 for r in last)
    # The connection's counter against the bytes this test sent (all acked by then).
    assert {int(r["conn_bytes_acked"]) for r in last} == {pump.sent}

    # The run's SUB_ESTABLISHED/SUB_CLOSED, as ip mptcp monitor saw them.
    outside = set()
    for line in ipm.lines[first:]:
        etype, tok, local, remote = parse_ip_monitor_line(line)
        if tok == token and etype in (10, 11):
            outside.add((etype, local, remote))
    events = list(csv.DictReader((tmp_path / "run.events.csv").read_text().splitlines()))
    mine = {({"SUB_ESTABLISHED": 10, "SUB_CLOSED": 11}[e["type"]], _addr(e["local"]),
             _addr(e["remote"]))
            for e in events if e["token"] == f"{token:08x}" and e["type"].startswith("SUB_")}
    assert outside == mine and {k for k, _, _ in mine} == {10, 11}, monitor_err
    assert any(e["type"] == "CREATED" for e in events)

    # Throughput moves from path 1 to the backup after the link goes down.
    start = meta["start_monotonic"]
    path1 = (initial_key := (f"{initial.local[0]}:{initial.local[1]}",
                             f"{initial.remote[0]}:{initial.remote[1]}"))
    path2 = (f"{backup.local[0]}:{backup.local[1]}", f"{backup.remote[0]}:{backup.remote[1]}")
    before = (_moved(rows, path1, 0, down_at - start), _moved(rows, path2, 0, down_at - start))
    after = (_moved(rows, path1, moved_at - start, 1e9), _moved(rows, path2, moved_at - start, 1e9))
    assert before[0] > 2**20 and before[1] < 0.1 * before[0], before
    assert after[1] > 2**19 and after[0] == 0, after
    assert initial_key == path1

    # The plot of this real run: a line per subflow in each panel, the events marked.
    pytest.importorskip("matplotlib", reason="the plot extra is not installed")
    fig = mptcp.plot(out, tmp_path / "run.png")
    for ax in fig.axes:
        assert len([x for x in ax.get_lines() if str(x.get_gid()).startswith("subflow ")]) == 2
        gids = {str(x.get_gid()) for x in ax.get_lines()}
        assert {"event SUB_ESTABLISHED", "event SUB_CLOSED"} <= gids


def _acked(sock: socket.socket, sub_id: Optional[int]) -> int:
    return next((s.bytes_acked or 0 for s in mptcp.subflows(sock) if s.id == sub_id), 0)


CLIENT = r"""
import socket, sys, time
host, port, seconds, code = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
s.connect((host, port))
print(s.getsockname()[1], flush=True)
end = time.monotonic() + seconds
while time.monotonic() < end:
    s.sendall(b"c" * 16384)
    time.sleep(0.01)
s.close()
sys.exit(code)
"""


def test_record_a_command_only(lab: Lab, tmp_path: Path) -> None:
    """Two clients; `-- COMMAND` records the one it runs (through a shell), and exits
    with its status."""
    ns = lab.client_ns
    server = lab.start_server()
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    host = lab.server_addrs["v4"][0]
    other = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, str(script), host,
                              str(server.port), "30", "0"], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout is not None
        other_port = int(other.stdout.readline())
        lab.wait_for(lambda: len([s for s in lab.ss_subflows(ns) if s["state"] == "ESTAB"]) == 2,
                     timeout=10, what="the other client's 2 subflows")
        other_token = next(m["token"] for m in ss_mptcp(lab, ns) if m["local"][1] == other_port)
        out = tmp_path / "cmd.csv"
        res = subprocess.run(
            _argv("record", "-o", str(out), "--interval", "0.05", "--", "sh", "-c",
                  f'"{sys.executable}" {script} {host} {server.port} 1.5 3', ns=ns),
            capture_output=True, text=True, timeout=60, env=_env())
        assert other.poll() is None  # still running: its connection was there all along
    finally:
        other.kill()
        other.wait()
    assert res.returncode == 3, res.stderr
    port = int(res.stdout.split()[0])  # the command's output passes through
    rows = _rows(out)
    assert rows, res.stderr
    tokens = {r["token"] for r in rows}
    (token,) = tokens
    assert token != f"{other_token:08x}"
    initial = {r["local"] for r in rows if r["loc_id"] == "0"}
    assert initial == {f"{lab.client_addrs['v4'][0]}:{port}"}
    assert len({r["local"] for r in rows}) == 2  # and its endpoint subflow
    assert f":{other_port}" not in "".join(r["local"] for r in rows)
    events = list(csv.DictReader((tmp_path / "cmd.events.csv").read_text().splitlines()))
    assert {e["token"] for e in events} == {token}
    assert {"CREATED", "SUB_ESTABLISHED", "CLOSED"} <= {e["type"] for e in events}
    meta = json.loads((tmp_path / "cmd.meta.json").read_text())
    assert meta["command"][0] == "sh" and len(meta["pids"]) == 1
    _summary(res.stderr)


def test_record_command_errors_and_duration(lab: Lab, tmp_path: Path) -> None:
    ns = lab.client_ns
    res = subprocess.run(_argv("record", "-o", str(tmp_path / "x.csv"), "--", "/no/such/cmd",
                               ns=ns), capture_output=True, text=True, timeout=30, env=_env())
    assert res.returncode == 1
    (line,) = res.stderr.splitlines()
    assert line.startswith("mptcp record: cannot run '/no/such/cmd'")
    t0 = time.monotonic()
    res = subprocess.run(_argv("record", "-q", "-o", str(tmp_path / "d.csv"), "--duration", "0.5",
                               "--", "sleep", "30", ns=ns),
                         capture_output=True, text=True, timeout=30, env=_env())
    assert res.returncode == 124 and res.stderr == ""  # as timeout(1); -q: no progress
    assert time.monotonic() - t0 < 20
    assert _rows(tmp_path / "d.csv") == []
    res = subprocess.run(_argv("record", "-q", "-o", str(tmp_path / "k.csv"), "--", "sh", "-c",
                               "kill -TERM $$", ns=ns),
                         capture_output=True, text=True, timeout=30, env=_env())
    assert res.returncode == 128 + signal.SIGTERM


def _started(meta: Path, proc: subprocess.Popen[str]) -> None:
    Lab.wait_for(lambda: meta.exists() or proc.poll() is not None, timeout=20,
                 what="the recorder to start")
    assert proc.poll() is None, proc.communicate()


@pytest.mark.parametrize("how", ["sigterm-to-recorder", "ctrl-c-to-the-group",
                                 "sigint-to-recorder"])
def test_signals_stop_the_command_and_the_recorder(lab: Lab, tmp_path: Path, how: str,
                                                   sigint_default: None) -> None:
    """SIGTERM to the recorder is passed on to its command; Ctrl-C on a terminal
    reaches both (one process group); a SIGINT to the recorder alone is passed on
    after a moment. Each way: the command's status, whole files."""
    out = tmp_path / "sig.csv"
    proc = subprocess.Popen(_argv("record", "-o", str(out), "--", "sleep", "60", ns=lab.client_ns),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
                            start_new_session=True)
    try:
        _started(tmp_path / "sig.meta.json", proc)
        # ip netns exec execs the recorder, so its pid is the recorder's.
        Lab.wait_for(lambda: len(process_tree([proc.pid])) == 2, timeout=20,
                     what="the command to start")
        (command_pid,) = process_tree([proc.pid]) - {proc.pid}
        # the meta file names the command from its start, should the recorder be killed
        Lab.wait_for(lambda: json.loads((tmp_path / "sig.meta.json").read_text())["pids"]
                     == [command_pid], timeout=10, what="the meta file to name the command")
        t0 = time.monotonic()
        if how == "sigterm-to-recorder":
            proc.send_signal(signal.SIGTERM)
        elif how == "sigint-to-recorder":
            proc.send_signal(signal.SIGINT)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    sig = signal.SIGTERM if how == "sigterm-to-recorder" else signal.SIGINT
    assert proc.returncode == 128 + sig, err
    assert took < 4, took  # passed on, not left to the 5 s escalation
    _summary(err)
    assert _rows(out) == [] and json.loads((tmp_path / "sig.meta.json").read_text())["samples"] > 0


def test_interval_of_10ms(lab: Lab, tmp_path: Path, sigint_default: None) -> None:
    ns = lab.client_ns
    server = lab.start_server()
    sock = lab.connect(port=server.port)
    pump = Pump(sock)
    pump.start()
    out = tmp_path / "fast.csv"
    try:
        rec = _spawn_record(ns, "-o", str(out), "--interval", "0.01")
        lab.wait_for(lambda: out.exists() and out.stat().st_size > 200_000, timeout=30,
                     interval=0.1, what="rows")
        code, _, err = _stop(rec, signal.SIGINT)  # Ctrl-C: a clean stop
    finally:
        pump.stop()
        sock.close()
    assert code == 0, err
    _summary(err)
    rows = _rows(out)  # ends with a complete row
    times = [float(r["time"]) for r in rows]
    assert times == sorted(times)  # never out of order
    for key in {(r["local"], r["remote"]) for r in rows}:
        mine = [float(r["time"]) for r in rows if (r["local"], r["remote"]) == key]
        assert all(b > a for a, b in zip(mine, mine[1:]))
    distinct = sorted(set(times))
    spacing = statistics.median(b - a for a, b in zip(distinct, distinct[1:]))
    print(f"\n10 ms interval: median spacing {spacing * 1000:.2f} ms over {len(distinct)} "
          f"samples; {err.strip().splitlines()[-1]}")
    assert 0.008 <= spacing <= 0.012, spacing


def test_without_net_admin_samples_only(lab: Lab, tmp_path: Path) -> None:
    ns = lab.client_ns
    server = lab.start_server()
    sock = lab.connect(port=server.port)
    sock.sendall(b"x" * 2000)
    out = tmp_path / "nocap.csv"
    res = subprocess.run(
        _argv("record", "-o", str(out), "--duration", "0.5", ns=ns,
              prefix=("setpriv", "--inh-caps=-all", "--bounding-set=-net_admin")),
        capture_output=True, text=True, timeout=30, env=_env())
    sock.close()
    assert res.returncode == 0, res.stderr
    notes = [line for line in res.stderr.splitlines() if "CAP_NET_ADMIN" in line]
    assert len(notes) == 1 and notes[0].startswith("mptcp record: recording samples only")
    assert "no events" in _summary(res.stderr)
    assert len(_rows(out)) > 0
    assert (tmp_path / "nocap.events.csv").read_text().count("\n") == 1  # the header only
    assert "CAP_NET_ADMIN" in json.loads((tmp_path / "nocap.meta.json").read_text())["events"]


def test_record_api_with_a_token(lab: Lab, tmp_path: Path) -> None:
    """mptcp.record(token=...) keeps one of two connections, typed; save() and load agree."""
    ns = lab.client_ns
    server = lab.start_server()
    rec = lab.run_in(ns, mptcp.record, interval=0.02)
    a = lab.connect(port=server.port)
    token = mptcp.info(a).token
    only = lab.run_in(ns, mptcp.record, interval=0.02, token=token)
    b = lab.connect(port=server.port)
    other = mptcp.info(b).token
    try:
        for s in (a, b):
            s.sendall(b"x" * 100_000)
        lab.wait_for(lambda: len([s for s in lab.ss_subflows(ns) if s["state"] == "ESTAB"]) == 4,
                     timeout=10, what="4 subflows")
        time.sleep(0.1)
    finally:
        only.stop()
        rec.stop()
        ss = lab.ss_subflows(ns)
        a.close()
        b.close()
    assert not only.running and only.events_error is None
    assert {s.token for s in only.samples} == {token}
    assert {s.token for s in rec.samples} == {token, other}
    theirs = {(s["local"], s["remote"]) for s in ss if s["token"] == token}
    assert {(s.local, s.remote) for s in only.samples} == theirs
    assert all(isinstance(s, mptcp.Sample) and s.subflow is None for s in only.samples)
    assert {e.token for e in only.events} == {token}
    assert any(e.type == mptcp.EventType.SUB_ESTABLISHED for e in only.events)
    only.save(tmp_path / "a.csv")
    back = load(tmp_path / "a.csv")
    assert back.samples == only.samples and back.events == only.events
    assert back.token == token


def test_demo_records_and_plots_the_failover(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the plot extra is not installed")
    import matplotlib.image

    csv_path, png = tmp_path / "demo.csv", tmp_path / "demo.png"
    res = subprocess.run(_argv("demo", "--size", "20", "--record", str(csv_path), "--plot", str(png)),
                         capture_output=True, text=True, timeout=180, env=_env())
    assert res.returncode == 0, res.stderr
    assert f"plot -> {png}" in res.stdout and "namespaces removed" in res.stdout
    pixels = matplotlib.image.imread(png)
    assert pixels.shape[:2] == (900, 1200)
    assert 0.03 < (pixels[..., :3] < 0.9).any(axis=2).mean() < 0.6
    rows = _rows(csv_path)
    keys = {(r["local"], r["remote"]): r["backup"] for r in rows}
    assert sorted(keys.values()) == ["0", "1"]
    path1 = next(k for k, b in keys.items() if b == "0")
    backup = next(k for k, b in keys.items() if b == "1")
    active = [float(r["time"]) for r in rows if int(r["bytes_acked"] or 0) > 1]
    t0, t1 = min(active), max(float(r["time"]) for r in rows)
    early = (_moved(rows, path1, t0, t0 + 0.8), _moved(rows, backup, t0, t0 + 0.8))
    late = (_moved(rows, path1, t1 - 1.0, t1), _moved(rows, backup, t1 - 1.0, t1))
    assert early[0] > 10 * max(early[1], 1) and late[1] > 10 * max(late[0], 1), (early, late)
    events = list(csv.DictReader((tmp_path / "demo.events.csv").read_text().splitlines()))
    assert [e["local"] for e in events if e["type"] == "SUB_ESTABLISHED"] == [backup[0]]
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "mptcpdemo" not in left
