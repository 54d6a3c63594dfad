"""``mptcp exporter``: scraped over HTTP inside a lab namespace, parsed with prometheus_client."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mptcp
from mptcp import diag
from mptcp._lab import Lab
from tests.outside import ss_mptcp

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

SRC = str(Path(mptcp.__file__).resolve().parents[1])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([SRC, *filter(None, [env.get("PYTHONPATH")])])
    return env


def _hostport(addr: tuple[str, int] | None) -> str:
    assert addr is not None
    return f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"


@pytest.fixture
def exporter(lab: Lab) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``mptcp exporter`` on a free port of the client namespace's loopback, and its URL."""
    proc = subprocess.Popen(
        ["ip", "netns", "exec", lab.client_ns, sys.executable, "-m", "mptcp", "exporter",
         "--port", "0", "--address", "127.0.0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once the socket listens
        assert line.startswith("serving http://127.0.0.1:"), (line, proc.stderr and proc.stderr.read())
        yield proc, line.split()[1]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _scrape(lab: Lab, url: str) -> dict[str, Any]:
    # The namespace's loopback is reachable only from inside it.
    def get() -> str:
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert resp.status == 200
            return str(resp.read().decode())
    text = lab.run_in(lab.client_ns, get)
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_scrape_matches_connections(lab: Lab, exporter: tuple[subprocess.Popen[str], str]) -> None:
    proc, url = exporter
    ns = lab.client_ns
    empty = _scrape(lab, url)
    assert [s.value for s in empty["mptcp_connections"].samples] == [0]
    assert empty["mptcp_subflow_backup"].samples == []

    server = lab.start_server()
    sock = lab.connect(port=server.port)
    sock.sendall(b"x" * 50_000)  # the in-kernel PM adds the endpoint's subflow after data
    lab.wait_for(lambda: len(lab.run_in(ns, diag.connections)[0].subflows) == 2,
                 timeout=10.0, what="2 subflows")
    lab.ip(ns, "mptcp", "endpoint", "change", "id", "1", "backup")
    fams = _scrape(lab, url)
    (c,) = lab.run_in(ns, diag.connections)
    token = f"{c.token:08x}"

    assert [s.value for s in fams["mptcp_connections"].samples] == [1]
    (subs,) = fams["mptcp_connection_subflows"].samples
    assert subs.labels == {"token": token, "local": _hostport(c.local), "remote": _hostport(c.remote)}
    assert subs.value == len(c.subflows) == 2

    backup = {(s.labels["local"], s.labels["remote"]): s.value
              for s in fams["mptcp_subflow_backup"].samples}
    assert backup == {(_hostport(s.local), _hostport(s.remote)): float(bool(s.backup))
                      for s in c.subflows}
    assert sorted(backup.values()) == [0.0, 1.0]
    assert {s.labels["token"] for s in fams["mptcp_subflow_backup"].samples} == {token}

    # counters: a family "x" whose samples are "x_total"; values at least what was sent
    sent = fams["mptcp_connection_bytes_sent"]
    assert sent.type == "counter" and sent.samples[0].name == "mptcp_connection_bytes_sent_total"
    assert sent.samples[0].value >= 50_000
    acked = {s.labels["local"]: s.value for s in fams["mptcp_subflow_bytes_acked"].samples}
    assert acked[_hostport(c.local)] >= 50_000
    for name in ("mptcp_subflow_rtt_seconds", "mptcp_subflow_cwnd", "mptcp_subflow_retransmits",
                 "mptcp_subflow_bytes_received", "mptcp_connection_retransmits"):
        assert fams[name].samples, name
    for s in fams["mptcp_subflow_rtt_seconds"].samples:
        assert 0 < s.value < 1

    sock.close()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(5) == 0


def test_missing_prometheus_client_is_one_line_exit_1() -> None:
    code = ("import sys; sys.modules['prometheus_client'] = None\n"
            "from mptcp.cli import main; sys.exit(main(['exporter', '--port', '0']))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, env=_env())
    assert res.returncode == 1
    (line,) = res.stderr.splitlines()
    assert line.startswith("mptcp exporter: ") and "pip install 'mptcp[exporter]'" in line


def test_import_mptcp_stays_light() -> None:
    code = ("import sys, mptcp, mptcp.cli; "
            "print(sorted(m for m in sys.modules if m.startswith(('prometheus', 'curses'))))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, env=_env())
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_usage_errors_exit_2() -> None:
    for args in (["exporter"], ["exporter", "--port", "70000"], ["top", "--interval", "0"],
                 ["monitor", "--token", "nothex"]):
        res = subprocess.run([sys.executable, "-m", "mptcp", *args], capture_output=True,
                             text=True, timeout=30, env=_env())
        assert res.returncode == 2, (args, res.stderr)
        (line,) = res.stderr.splitlines()
        assert line.startswith(f"mptcp {args[0]}: ") and "--help" in line, line


def test_port_in_use_exits_1(lab: Lab) -> None:
    # A listener on the namespace's loopback holds the port.
    def listen() -> socket.socket:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen()
        return s
    holder = lab.run_in(lab.client_ns, listen)
    try:
        port = holder.getsockname()[1]
        res = subprocess.run(
            ["ip", "netns", "exec", lab.client_ns, sys.executable, "-m", "mptcp", "exporter",
             "--port", str(port)], capture_output=True, text=True, timeout=30, env=_env())
        assert res.returncode == 1
        (line,) = res.stderr.splitlines()
        assert line.startswith("mptcp exporter: ") and "in use" in line
    finally:
        holder.close()


def test_fallback_is_a_metric(lab: Lab, exporter: tuple[subprocess.Popen[str], str]) -> None:
    # An MPTCP client against a plain TCP server falls back to TCP (ss: "fallback").
    _, url = exporter
    plain = lab.start_server(proto=socket.IPPROTO_TCP)
    fell = lab.connect(port=plain.port)
    fell.sendall(b"x" * 1000)
    mp = lab.start_server()
    real = lab.connect(port=mp.port)
    real.sendall(b"x" * 1000)
    ss = {c["local"]: "fallback" in c["info"] for c in ss_mptcp(lab, lab.client_ns)}
    fams = _scrape(lab, url)
    got = {s.labels["local"]: s.value for s in fams["mptcp_connection_fallback"].samples}
    assert fams["mptcp_connection_fallback"].type == "gauge"
    assert got == {_hostport(local): float(fb) for local, fb in ss.items()}
    assert got[_hostport(fell.getsockname()[:2])] == 1.0
    assert got[_hostport(real.getsockname()[:2])] == 0.0
    fell.close()
    real.close()


def test_sigterm_during_a_request_stops_the_exporter(
        lab: Lab, exporter: tuple[subprocess.Popen[str], str]) -> None:
    # A scraper that sent half a request holds the exporter inside its request
    # handler; SIGTERM must still end it (it used to be swallowed there).
    proc, url = exporter
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])

    def half_request() -> socket.socket:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # no blank line: not finished
        return s
    held = lab.run_in(lab.client_ns, half_request)
    try:
        import time

        time.sleep(0.3)  # the exporter is reading the rest of the headers
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
    finally:
        held.close()
