"""Which processes own which sockets, from ``/proc`` (standard library only).

A socket's inode (``Connection.inode`` from :func:`mptcp.connections`, the number
``ss -e`` prints) appears as the link target ``socket:[INODE]`` of every file
descriptor that refers to it under ``/proc/PID/fd``. That is all ``ss -p`` does, and
all this module does:

* :func:`socket_inodes` - the socket inodes one process holds;
* :func:`socket_owners` - inode -> the processes holding it (pid and name), for a
  given set of inodes, scanning every process or only some;
* :class:`SocketOwners` - :func:`socket_owners` for a view refreshed every second
  (``mptcp top -p``), rescanning ``/proc`` only for sockets it has not seen;
* :func:`process_tree` - a set of processes and all their descendants;
* :class:`ProcessTreeSockets` - "is this socket held by that process tree?", cached
  so that a sampler asking every tick rescans ``/proc`` only when an inode it has
  not classified yet shows up.

Reading another user's ``/proc/PID/fd`` needs the right to ptrace it (root has it);
processes whose descriptors cannot be read, and processes that exit during a scan,
are skipped rather than reported as errors: the answer is "the owners this caller
can see", like ``ss -p``. Linux only; works on every kernel with ``/proc``.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Callable, Collection, Dict, Iterable, List, NamedTuple, Optional, Set, Tuple

__all__ = ["Process", "ProcessTreeSockets", "SocketOwners", "process_name", "process_tree",
           "socket_inodes", "socket_owners"]

_SOCKET_PREFIX = "socket:["


class Process(NamedTuple):
    """A process holding a socket, as :func:`socket_owners` returns it.

    ``name`` is the command name the kernel keeps (``/proc/PID/comm``, at most 15
    characters, what ``ss -p`` and ``top`` show); ``""`` if the process exited
    before it could be read.
    """

    pid: int
    name: str


def _pids(proc: str) -> List[int]:
    return [int(entry) for entry in os.listdir(proc) if entry.isdigit()]


def socket_inodes(pid: int, *, proc: str = "/proc") -> Set[int]:
    """The inodes of the sockets process ``pid`` has open (its ``/proc/PID/fd``).

    Parameters
    ----------
    pid
        A process id.
    proc
        Where procfs is mounted (tests point it elsewhere).

    Returns
    -------
    set of int
        Empty if the process does not exist (any more) or its descriptors may not
        be read by the caller.
    """
    fd_dir = f"{proc}/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:  # gone, or not ours to look at
        return set()
    inodes = set()
    for fd in fds:
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith(_SOCKET_PREFIX):
            inodes.add(int(target[len(_SOCKET_PREFIX):-1]))
    return inodes


def process_name(pid: int, *, proc: str = "/proc") -> str:
    """The command name of ``pid`` (``/proc/PID/comm``), ``""`` if it is gone."""
    try:
        with open(f"{proc}/{pid}/comm", encoding="utf-8", errors="replace") as f:
            return f.read().rstrip("\n")
    except OSError:
        return ""


def socket_owners(inodes: Optional[Collection[int]] = None, *,
                  pids: Optional[Iterable[int]] = None,
                  proc: str = "/proc") -> Dict[int, List[Process]]:
    """Which processes hold which sockets.

    Parameters
    ----------
    inodes
        Only report these socket inodes (``Connection.inode``); all sockets if None.
    pids
        Only look at these processes; every process in ``proc`` if None.
    proc
        Where procfs is mounted.

    Returns
    -------
    dict
        inode -> the processes holding it, by ascending pid (several after a
        ``fork`` or fd passing). Inodes nobody visible holds are absent.
    """
    wanted = None if inodes is None else set(inodes)
    owners: Dict[int, List[Process]] = {}
    if wanted is not None and not wanted:
        return owners  # nothing to look for: no /proc walk
    for pid in sorted(_pids(proc) if pids is None else set(pids)):
        held = socket_inodes(pid, proc=proc)
        if wanted is not None:
            held &= wanted
        if held:
            who = Process(pid, process_name(pid, proc=proc))
            for inode in held:
                owners.setdefault(inode, []).append(who)
    return owners


class SocketOwners:
    """:func:`socket_owners` for a caller asking every tick about the sockets of a
    snapshot: ``/proc`` is scanned when a socket not looked up yet appears, and for a
    socket nobody visible holds at most every ``recheck`` seconds (an accepted
    socket shows up in sock_diag before ``accept()`` hands it to the process, and a
    caller may not read every process). A socket's owners are looked up once: a
    descriptor passed to another process later is not seen.

    Parameters
    ----------
    recheck
        Seconds before a socket found without a visible owner is looked at again.
    proc
        Where procfs is mounted.
    clock
        A monotonic clock in seconds.
    """

    def __init__(self, *, recheck: float = 2.0, proc: str = "/proc",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._recheck = recheck
        self._proc = proc
        self._clock = clock
        self._known: Dict[int, Tuple[Process, ...]] = {}
        self._unowned: Dict[int, float] = {}  # inode -> when it was last found unowned
        self.scans = 0
        """How many times ``/proc`` was scanned (for tests)."""

    def owners(self, inodes: Iterable[int]) -> Dict[int, Tuple[Process, ...]]:
        """inode -> its owners, by ascending pid, for each of ``inodes`` (0, no
        socket, is left out). Pass all of a snapshot's inodes each time: the others
        are forgotten, so an inode number the kernel reuses is looked up afresh."""
        inodes = {i for i in inodes if i}
        now = self._clock()
        todo = [i for i in inodes if i not in self._known
                and now - self._unowned.get(i, -float("inf")) >= self._recheck]
        if todo:
            self.scans += 1
            found = socket_owners(todo, proc=self._proc)
            for inode in todo:
                if inode in found:
                    self._known[inode] = tuple(found[inode])
                    self._unowned.pop(inode, None)
                else:
                    self._unowned[inode] = now
        self._known = {i: who for i, who in self._known.items() if i in inodes}
        self._unowned = {i: t for i, t in self._unowned.items() if i in inodes}
        return {i: self._known.get(i, ()) for i in inodes}


def _parent_of(pid: int, proc: str) -> Optional[int]:
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses, so split
    # after the last ")".
    fields = stat[stat.rfind(b")") + 2:].split()
    return int(fields[1]) if len(fields) > 1 else None


def _children_files(pid: int, proc: str) -> Optional[List[int]]:
    """Children from ``/proc/PID/task/*/children`` (CONFIG_PROC_CHILDREN), or None
    if the kernel lacks those files."""
    task_dir = f"{proc}/{pid}/task"
    try:
        tasks = os.listdir(task_dir)
    except OSError:
        return []
    children: List[int] = []
    for tid in tasks:
        try:
            with open(f"{task_dir}/{tid}/children", "rb") as f:
                children += [int(c) for c in f.read().split()]
        except FileNotFoundError:
            if not os.path.exists(f"{task_dir}/{tid}"):
                continue  # the thread ended
            return None  # the kernel has no children files
        except OSError:
            continue
    return children


def process_tree(roots: Iterable[int], *, proc: str = "/proc") -> Set[int]:
    """``roots`` and all their living descendants.

    Uses ``/proc/PID/task/*/children`` where the kernel has it
    (``CONFIG_PROC_CHILDREN``), else one pass over every ``/proc/PID/stat`` for
    the parent links. A process that daemonized (was re-parented to init or a
    subreaper) is no longer a descendant.

    Parameters
    ----------
    roots
        Process ids; the ones that do not exist are left out.
    proc
        Where procfs is mounted.

    Returns
    -------
    set of int
    """
    alive = {pid for pid in roots if os.path.isdir(f"{proc}/{pid}")}
    tree = set(alive)
    todo = list(alive)
    by_parent: Optional[Dict[int, List[int]]] = None
    while todo:
        pid = todo.pop()
        kids = None if by_parent is not None else _children_files(pid, proc)
        if kids is None:
            if by_parent is None:
                by_parent = {}
                for other in _pids(proc):
                    parent = _parent_of(other, proc)
                    if parent is not None:
                        by_parent.setdefault(parent, []).append(other)
            kids = by_parent.get(pid, [])
        for kid in kids:
            if kid not in tree:
                tree.add(kid)
                todo.append(kid)
    return tree


class ProcessTreeSockets:
    """Answers "which of these sockets does the process tree hold?", cheaply.

    The tree is the root processes and their descendants, recomputed at each
    rescan. An inode seen held by the tree stays classified as the tree's; an
    inode not held is looked at again at most every ``recheck`` seconds (a server
    socket shows up in sock_diag before ``accept()`` hands it to the process). So
    ``/proc`` is rescanned when a new connection appears, and otherwise at most
    every ``recheck`` seconds while foreign connections exist.

    Parameters
    ----------
    roots
        Process ids whose trees count; more can be added with :meth:`add_root`.
    recheck
        Seconds before an inode found foreign is looked at again.
    proc
        Where procfs is mounted.
    clock
        A monotonic clock in seconds.
    """

    def __init__(self, roots: Iterable[int] = (), *, recheck: float = 1.0,
                 proc: str = "/proc", clock: Callable[[], float] = time.monotonic) -> None:
        self.roots = set(roots)
        # add_root() comes from another thread than owned() (the command starts while
        # the sampler runs).
        self._lock = threading.Lock()
        self._recheck = recheck
        self._proc = proc
        self._clock = clock
        self._ours: Set[int] = set()
        self._foreign: Dict[int, float] = {}  # inode -> when it was last found foreign
        self.scans = 0
        """How many times ``/proc`` was scanned (for tests and benchmarks)."""

    def add_root(self, pid: int) -> None:
        """Count ``pid``'s tree too (from the next question on). Thread-safe."""
        with self._lock:
            self.roots = self.roots | {pid}
            self._foreign.clear()  # what was foreign may be the new root's

    def owned(self, inodes: Iterable[int]) -> Set[int]:
        """The subset of ``inodes`` held by the tree.

        Pass every inode of interest each time (all the connections of a
        snapshot): inodes not passed are forgotten, so the caches stay the size
        of the present.
        """
        with self._lock:
            return self._owned(set(inodes))

    def _owned(self, inodes: Set[int]) -> Set[int]:
        now = self._clock()
        unknown = [i for i in inodes - self._ours
                   if now - self._foreign.get(i, -float("inf")) >= self._recheck]
        if unknown:
            self.scans += 1
            held: Set[int] = set()
            for pid in process_tree(self.roots, proc=self._proc):
                held |= socket_inodes(pid, proc=self._proc)
            self._ours |= held & inodes
            for inode in unknown:
                if inode not in held:
                    self._foreign[inode] = now
        self._ours &= inodes
        if not self._foreign.keys() <= inodes:
            self._foreign = {i: t for i, t in self._foreign.items() if i in inodes}
        return set(self._ours)
