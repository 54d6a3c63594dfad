"""The outside view of MPTCP that tests and benchmarks compare the library with:
``ss -MinH`` (MPTCP sockets) and ``ip mptcp monitor`` (events), parsed from their
text. ``ss -tinH`` (subflows) is parsed by the lab itself, which ``mptcp demo`` uses
for its cross-check (``mptcp._lab.parse_ss_subflows``)."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from typing import Any

from mptcp._lab import IPPROTO_MPTCP, Lab, LabError, _info_kv, _int_or_none, _sock_fields, _ss_records

__all__ = ["parse_ss_mptcp", "ss_mptcp", "ss_subflow_text", "IP_MONITOR_TYPES",
           "parse_ip_monitor_line", "IpMonitor", "listener_blip", "start_ip_monitor"]


def parse_ss_mptcp(output: str) -> list[dict[str, Any]]:
    """Parse ``ss -MinH`` output (MPTCP sockets)."""
    out = []
    for fields, info in _ss_records(output):
        rec = _sock_fields(fields)
        if rec is None:
            continue
        kv = _info_kv(info)
        rec["token"] = _int_or_none("0x" + kv["token"]) if "token" in kv else None
        # ss leaves out zero counters: an absent "subflows:" means 0.
        rec["subflows"] = _int_or_none(kv.get("subflows", "0"))
        rec["subflows_max"] = _int_or_none(kv.get("subflows_max"))
        rec["add_addr_signal"] = _int_or_none(kv.get("add_addr_signal"))
        rec["add_addr_accepted"] = _int_or_none(kv.get("add_addr_accepted"))
        rec["info"] = info
        out.append(rec)
    return out


# -- ip mptcp monitor, the outside view of events ---------------------------------

#: iproute2 6.1's names for the event types it knows (it prints the others as
#: ``[UNKNOWN 15]`` without attributes).
IP_MONITOR_TYPES = {
    "CREATED": 1, "ESTABLISHED": 2, "CLOSED": 3, "ANNOUNCED": 6, "REMOVED": 7,
    "SF_ESTABLISHED": 10, "SF_CLOSED": 11, "SF_PRIO": 13,
}
_IP_MONITOR_LINE = re.compile(r"^\[\s*(?:UNKNOWN (\d+)|(\S+))\]\s*(.*)$")


def parse_ip_monitor_line(line: str) -> tuple[int, int | None, tuple[str, int] | None,
                                              tuple[str, int] | None]:
    """``[SF_ESTABLISHED] token=.. saddr4=.. sport=..`` -> (type, token, local, remote)."""
    m = _IP_MONITOR_LINE.match(line.strip())
    if m is None:
        raise ValueError(f"unexpected ip mptcp monitor line {line!r}")
    etype = int(m.group(1)) if m.group(1) else IP_MONITOR_TYPES[m.group(2)]
    kv = dict(part.split("=", 1) for part in m.group(3).split())
    token = int(kv["token"], 16) if "token" in kv else None

    def addr(v4: str, v6: str, port: str) -> tuple[str, int] | None:
        host = kv.get(v4) or kv.get(v6)
        return None if host is None else (host, int(kv.get(port, 0)))

    return (etype, token, addr("saddr4", "saddr6", "sport"), addr("daddr4", "daddr6", "dport"))


class IpMonitor:
    """``ip -n NS mptcp monitor`` with its lines collected by a thread."""

    def __init__(self, ns: str) -> None:
        self.proc = subprocess.Popen(
            ["ip", "-n", ns, "mptcp", "monitor"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
        )
        self.lines: list[str] = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def stop(self) -> str:
        """Stop ip; returns what it wrote to stderr."""
        if self.proc.poll() is None:
            self.proc.terminate()
        _, err = self.proc.communicate(timeout=10)
        self._t.join(5)
        return err


def ss_mptcp(lab: Lab, ns: str) -> list[dict[str, Any]]:
    """MPTCP sockets in ``ns``, from ``ss -MinH``."""
    return parse_ss_mptcp(lab.sh(ns, "ss", "-MinH"))

def ss_subflow_text(lab: Lab, ns: str) -> dict[tuple[tuple[str, int], tuple[str, int]], str]:
    """``ss -tieH`` in ``ns``: each MPTCP subflow's ``(local, remote)`` -> its whole text
    (``fwmark:0x42``, the congestion control's name, ``mss:1448``, ...)."""
    out = {}
    for fields, info in _ss_records(lab.sh(ns, "ss", "-tieH")):
        rec = _sock_fields(fields)
        if rec is not None and "tcp-ulp-mptcp" in info:
            out[(rec["local"], rec["remote"])] = " ".join(fields) + " " + info
    return out


def listener_blip(lab: Lab, ns: str) -> int:
    """Open and close an MPTCP listener on 127.0.0.1 in ``ns`` (two events); its port."""
    s = lab.socket(ns, socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
    with s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        return int(s.getsockname()[1])

def start_ip_monitor(lab: Lab, ns: str) -> tuple[IpMonitor, int]:
    """An ``ip mptcp monitor`` that has joined the events group, and the index of
    its first line that belongs to what follows (earlier lines are probes)."""
    ipm = IpMonitor(ns)
    deadline = time.monotonic() + 10
    while not ipm.lines:
        if time.monotonic() > deadline:
            ipm.stop()
            raise LabError("ip mptcp monitor printed nothing")
        listener_blip(lab, ns)
        time.sleep(0.05)
    while True:  # probes sent before ip joined left no line: wait until it settles
        n = len(ipm.lines)
        time.sleep(0.2)
        if len(ipm.lines) == n:
            return ipm, n
