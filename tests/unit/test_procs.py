"""Socket inode -> process lookup (``mptcp._procs``): on this process's own /proc
entries, and on fake /proc trees for the parent-link walk and the caching."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

from mptcp._procs import (Process, ProcessTreeSockets, SocketOwners, process_name, process_tree,
                          socket_inodes, socket_owners)


def _inode(sock: socket.socket) -> int:
    return os.fstat(sock.fileno()).st_ino


def test_own_sockets_and_owner_names() -> None:
    a, b = socket.socketpair()
    with a, b:
        mine = socket_inodes(os.getpid())
        assert {_inode(a), _inode(b)} <= mine
        owners = socket_owners({_inode(a), 1}, pids=[os.getpid()])
        assert owners == {_inode(a): [Process(os.getpid(), process_name(os.getpid()))]}
        assert process_name(os.getpid()) == Path("/proc/self/comm").read_text().strip()
        everyone = socket_owners({_inode(b)})  # scanning every process finds it too
        assert Process(os.getpid(), process_name(os.getpid())) in everyone[_inode(b)]
    assert socket_inodes(2**22 + 12345) == set()  # no such process
    assert process_name(2**22 + 12345) == ""


def test_a_child_process_tree_holds_a_passed_socket() -> None:
    a, b = socket.socketpair()
    # sh -> python grandchild that holds b; the tree of sh must include it.
    code = "import sys, time; sys.stdout.write('up\\n'); sys.stdout.flush(); time.sleep(60)"
    child = subprocess.Popen(["sh", "-c", f'"{sys.executable}" -c "{code}"; :'],
                             pass_fds=[b.fileno()], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline() == b"up\n"
        b.close()  # now only the child tree holds it
        tree = process_tree([child.pid])
        assert child.pid in tree and len(tree) == 2 and os.getpid() not in tree
        owned = ProcessTreeSockets([child.pid]).owned({_inode(a)})
        assert owned == set()  # a stayed with us
        grandchild = (tree - {child.pid}).pop()
        held = socket_inodes(grandchild)
        watcher = ProcessTreeSockets([child.pid])
        assert watcher.owned(held | {_inode(a)}) == held and held
    finally:
        child.kill()
        child.wait()
        a.close()


def _fake_proc(root: Path, parents: Dict[int, int], fds: Dict[int, List[int]],
               children_files: bool = False) -> str:
    """A /proc with ``PID/stat`` (parent links), ``PID/comm`` and ``PID/fd`` links."""
    for pid, ppid in parents.items():
        d = root / str(pid)
        (d / "fd").mkdir(parents=True)
        (d / "task" / str(pid)).mkdir(parents=True)
        # A command name with spaces and parentheses, as a process may choose.
        (d / "stat").write_text(f"{pid} (a (b) c) S {ppid} 1 1 0 -1\n")
        (d / "comm").write_text(f"proc{pid}\n")
        for n, inode in enumerate(fds.get(pid, [])):
            os.symlink(f"socket:[{inode}]", d / "fd" / str(n))
        os.symlink("/dev/null", d / "fd" / "99")  # not a socket
        if children_files:
            kids = " ".join(str(k) for k, p in parents.items() if p == pid)
            (d / "task" / str(pid) / "children").write_text(kids + (" " if kids else ""))
    (root / "self").mkdir()
    return str(root)


PARENTS = {1: 0, 10: 1, 11: 10, 12: 11, 13: 10, 20: 1, 21: 20}
FDS = {11: [500], 12: [501, 502], 21: [600], 10: []}


def test_process_tree_from_parent_links_and_from_children_files(tmp_path: Path) -> None:
    for children_files in (False, True):
        proc = _fake_proc(tmp_path / str(children_files), PARENTS, FDS, children_files)
        assert process_tree([10], proc=proc) == {10, 11, 12, 13}
        assert process_tree([11, 20], proc=proc) == {11, 12, 20, 21}
        assert process_tree([99], proc=proc) == set()
        assert socket_inodes(12, proc=proc) == {501, 502}
        assert socket_owners(proc=proc) == {500: [Process(11, "proc11")],
                                            501: [Process(12, "proc12")],
                                            502: [Process(12, "proc12")],
                                            600: [Process(21, "proc21")]}


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_tree_sockets_rescan_only_for_unclassified_inodes(tmp_path: Path) -> None:
    proc = _fake_proc(tmp_path, PARENTS, FDS)
    clock = _Clock()
    watcher = ProcessTreeSockets([10], recheck=1.0, proc=proc, clock=clock)
    assert watcher.owned({500, 501, 600}) == {500, 501} and watcher.scans == 1
    assert watcher.owned({500, 501, 600}) == {500, 501} and watcher.scans == 1  # all known
    clock.now = 0.5
    assert watcher.owned({500, 600, 502}) == {500, 502} and watcher.scans == 2  # 502 is new
    assert watcher.owned({500, 600}) == {500} and watcher.scans == 2  # 600 was just checked
    # 600 moves into the tree (fd passing): noticed once the recheck time has passed.
    os.symlink("socket:[600]", Path(proc) / "13" / "fd" / "7")
    assert watcher.owned({500, 600}) == {500}
    clock.now = 1.6
    assert watcher.owned({500, 600}) == {500, 600} and watcher.scans == 3
    # A new root counts at once, and forgotten inodes do not linger.
    os.symlink("socket:[700]", Path(proc) / "21" / "fd" / "7")
    assert watcher.owned({500, 700}) == {500}
    watcher.add_root(20)
    assert watcher.owned({500, 700}) == {500, 700}  # without waiting for the recheck
    assert watcher.owned(set()) == set()
    scans = watcher.scans
    assert watcher.owned({500}) == {500} and watcher.scans == scans + 1


def test_socket_owners_rescan_only_for_new_or_unowned_sockets(tmp_path: Path) -> None:
    proc = _fake_proc(tmp_path, PARENTS, FDS)
    clock = _Clock()
    owners = SocketOwners(recheck=2.0, proc=proc, clock=clock)
    p11, p12 = Process(11, "proc11"), Process(12, "proc12")
    assert owners.owners({500, 501, 800, 0}) == {500: (p11,), 501: (p12,), 800: ()}
    assert owners.scans == 1
    clock.now = 1.0
    assert owners.owners({500, 501, 800}) == {500: (p11,), 501: (p12,), 800: ()}
    assert owners.scans == 1  # all looked up; 800 (nobody's yet) not again before 2 s
    # An accepted socket reaches its process after sock_diag saw it: found at the recheck.
    os.symlink("socket:[800]", Path(proc) / "13" / "fd" / "7")
    assert owners.owners({500, 800})[800] == ()
    clock.now = 2.5
    assert owners.owners({500, 800}) == {500: (p11,), 800: (Process(13, "proc13"),)}
    assert owners.scans == 2
    # Known owners are not looked up again; a forgotten inode is looked up afresh.
    assert owners.owners({500, 800}) and owners.scans == 2
    assert owners.owners({800}) == {800: (Process(13, "proc13"),)} and owners.scans == 2
    assert owners.owners({500}) == {500: (p11,)} and owners.scans == 3
    # Several holders (after fork or fd passing), by ascending pid.
    os.symlink("socket:[600]", Path(proc) / "11" / "fd" / "8")
    assert owners.owners({600}) == {600: (p11, Process(21, "proc21"))}
