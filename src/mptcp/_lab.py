"""A private two-path Multipath TCP lab in network namespaces.

Shared by the ``mptcp demo`` command and the kernel tests. Needs root (or
CAP_SYS_ADMIN + CAP_NET_ADMIN) and a kernel with MPTCP. Standard library only.

Topology (``n`` is chosen per lab so concurrent labs in one process differ)::

    client ns                          server ns
    c1  10.n.1.2/24  fd00:n:1::2/64 -- s1  10.n.1.1/24  fd00:n:1::1/64
    c2  10.n.2.2/24  fd00:n:2::2/64 -- s2  10.n.2.1/24  fd00:n:2::1/64

The client also gets a route to the server's path-1 net via the server's
path-2 address through ``c2`` (metric 1024), so that a subflow bound to ``c2``
can reach the server's path-1 address (needed for IPv6).

Example::

    with Lab() as lab:
        srv = lab.start_server()
        with lab.connect(port=srv.port) as s:
            s.sendall(b"x" * 1000)
        print(srv.wait_result())
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import hashlib
import itertools
import os
import queue
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

__all__ = [
    "IPPROTO_MPTCP", "Command", "Lab", "LabError", "LabTerminated", "Server", "cleanup_stale",
    "parse_ss_subflows", "wait_for",
]

IPPROTO_MPTCP = socket.IPPROTO_MPTCP
_CLONE_NEWNET = 0x40000000
_NETNS_DIR = "/run/netns"
_AF_INET = socket.AF_INET
_SOCK_STREAM = socket.SOCK_STREAM
Socket = socket.socket

_T = TypeVar("_T")

_counter = itertools.count(1)
_counter_lock = threading.Lock()
_nets_in_use: set[int] = set()


class LabError(RuntimeError):
    """A lab setup command failed."""


class LabTerminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived while a :class:`Lab` was open.

    Their default action ends the process at once, without ``finally`` blocks or
    atexit, which would leave the lab's namespaces behind. While a lab is open the
    main thread gets this instead (a ``KeyboardInterrupt``, so it ends a script or a
    pytest session like Ctrl-C does, and every ``with Lab()`` and atexit removes
    its namespaces). ``signum`` is the signal.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum


_TERM_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
_open_labs = 0  # labs that count on _on_term_signal; under _counter_lock


def _on_term_signal(signum: int, frame: object) -> None:
    raise LabTerminated(signum)


def _hook_term_signals(install: bool) -> None:
    """Route SIGTERM/SIGHUP to LabTerminated while labs are open (main thread only,
    and only where the process left the default action in place)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in _TERM_SIGNALS:
        try:
            current = signal.getsignal(sig)
            if install and current is signal.SIG_DFL:
                signal.signal(sig, _on_term_signal)
            elif not install and current is _on_term_signal:
                signal.signal(sig, signal.SIG_DFL)
        except (ValueError, OSError):
            pass


def _run(argv: list[str], check: bool = True, timeout: float = 30.0) -> str:
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise LabError(f"{' '.join(argv)!r} could not run: {err}") from err
    if check and proc.returncode != 0:
        raise LabError(
            f"{' '.join(argv)!r} failed with exit status {proc.returncode}: "
            f"{proc.stderr.strip() or proc.stdout.strip()}"
        )
    return proc.stdout


class Command:
    """The user's command that ``mptcp record -- COMMAND`` runs and waits for.

    This module is the package's one place that starts processes (``ip`` and ``ss``
    for the lab, and this; ``tests/unit/test_layers.py`` checks it). The command
    inherits the caller's stdin, stdout, stderr and process group. ``OSError`` if it
    cannot be started.
    """

    def __init__(self, argv: list[str]) -> None:
        self._proc = subprocess.Popen(argv)
        self.pid = self._proc.pid

    def wait(self, timeout: float | None = None) -> int | None:
        """Its exit status as ``Popen.returncode`` (-N for signal N), or None if it
        still runs after ``timeout`` seconds."""
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def poll(self) -> int | None:
        return self._proc.poll()

    def send_signal(self, signum: int) -> None:
        self._proc.send_signal(signum)

    def kill(self) -> int:
        """SIGKILL it and wait: its exit status."""
        self._proc.kill()
        return self._proc.wait()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _list_netns() -> list[str]:
    try:
        return sorted(os.listdir(_NETNS_DIR))
    except FileNotFoundError:
        return []


def cleanup_stale(prefix: str = "mptcp") -> list[str]:
    """Delete lab namespaces left behind by processes that no longer exist.

    Only names shaped like ``{prefix}-{pid}-{counter}-{hex}-cli|srv`` whose pid
    is not a live process are touched. Returns the deleted names.
    """
    pattern = re.compile(
        re.escape(prefix) + r"-(\d+)-\d+-[0-9a-f]+-(?:cli|srv)$"
    )
    removed = []
    for name in _list_netns():
        m = pattern.match(name)
        if m is None or _pid_alive(int(m.group(1))):
            continue
        _run(["ip", "netns", "del", name], check=False)
        removed.append(name)
    return removed


def _split_hostport(text: str) -> tuple[str, int]:
    """``10.0.2.1%c2:80`` / ``[fd00::1]:80`` / ``*:80`` -> (host, port)."""
    host, _, port = text.rpartition(":")
    if host.startswith("[") and "]" in host:
        host = host[1 : host.index("]")] + host[host.index("]") + 1 :]
    host = host.split("%", 1)[0]
    if host.startswith("::ffff:") and "." in host:
        host = host[len("::ffff:") :]
    try:
        port_num = int(port)
    except ValueError:
        port_num = 0
    return host, port_num


def _ss_records(output: str) -> list[tuple[list[str], str]]:
    """Group ``ss -H -i`` output into (socket line fields, info text).

    A socket line starts at column 0; its info follows on lines starting with
    whitespace.
    """
    records: list[tuple[list[str], str]] = []
    for line in output.splitlines():
        if not line.strip():
            continue
        if line[0].isspace() and records:
            fields, info = records[-1]
            records[-1] = (fields, (info + " " + line.strip()).strip())
        else:
            records.append((line.split(), ""))
    return records


_SF_TOKEN_RE = re.compile(
    r"token:([0-9a-f]+)\(id:(\d+)\)/([0-9a-f]+)\(id:(\d+)\)"
)
_KV_RE = re.compile(r"(?<!\S)([a-z_]+):(\S+)")


def _info_kv(info: str) -> dict[str, str]:
    return {k: v for k, v in _KV_RE.findall(info)}


def _sock_fields(fields: list[str]) -> dict[str, Any] | None:
    # With -t/-M (single socket type) and -H: State Recv-Q Send-Q Local Peer [Process]
    if len(fields) < 5:
        return None
    return {
        "state": fields[0],
        "recv_q": int(fields[1]) if fields[1].isdigit() else 0,
        "send_q": int(fields[2]) if fields[2].isdigit() else 0,
        "local": _split_hostport(fields[3]),
        "remote": _split_hostport(fields[4]),
    }


def _int_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text, 0)
    except ValueError:
        return None


def parse_ss_subflows(output: str) -> list[dict[str, Any]]:
    """Parse ``ss -tinH`` output; keep TCP sockets that are MPTCP subflows.

    Flag letters (iproute2 ``mptcp_subflow_info``): M remote MP_CAPABLE,
    m local MP_CAPABLE, J remote MP_JOIN, j local MP_JOIN, B remote backup,
    b local backup, e fully established, c connected, v map valid.
    """
    out = []
    for fields, info in _ss_records(output):
        if "tcp-ulp-mptcp" not in info:
            continue
        rec = _sock_fields(fields)
        if rec is None:
            continue
        # Only the part after "tcp-ulp-mptcp" describes the subflow; "rtt:" etc.
        # come before it.
        before, _, after = info.partition("tcp-ulp-mptcp")
        kv_all = _info_kv(before)
        kv = _info_kv(after)
        flags = kv.get("flags", "")
        rec["flags"] = flags
        rec["backup_local"] = "b" in flags
        rec["backup_remote"] = "B" in flags
        rec["join"] = "j" in flags or "J" in flags
        rec["fully_established"] = "e" in flags
        # iproute2 prints "token:REMTOKEN(id:REMID)/LOCTOKEN(id:LOCID)".
        m = _SF_TOKEN_RE.search(after)
        if m is not None:
            rec["remote_token"] = int(m.group(1), 16)
            rec["rem_id"] = int(m.group(2))
            rec["token"] = int(m.group(3), 16)
            rec["loc_id"] = int(m.group(4))
        else:
            rec["remote_token"] = rec["token"] = rec["rem_id"] = rec["loc_id"] = None
        rec["seq"] = _int_or_none("0x" + kv["seq"]) if "seq" in kv else None
        rtt = kv_all.get("rtt")
        rec["rtt_us"] = (
            int(float(rtt.split("/", 1)[0]) * 1000) if rtt is not None else None
        )
        rec["cwnd"] = _int_or_none(kv_all.get("cwnd"))
        rec["info"] = info
        out.append(rec)
    return out


class Server:
    """A listening socket in the lab's server namespace, served by a thread.

    ``mode="sink"`` reads each connection to EOF and records
    ``(nbytes, sha256hex)`` in ``results`` (and a queue read by
    :meth:`wait_result`); ``mode="echo"`` echoes every byte back.
    """

    def __init__(self, listener: socket.socket, mode: str) -> None:
        if mode not in ("sink", "echo"):
            raise ValueError(f"mode must be 'sink' or 'echo', not {mode!r}")
        self.listener = listener
        self.mode = mode
        self.family = listener.family
        self.port: int = listener.getsockname()[1]
        self.results: list[tuple[int, str]] = []
        self.errors: list[BaseException] = []
        self.conns: list[socket.socket] = []
        # C-level, like _NetnsWorker: wait_result() is where a Ctrl-C usually lands.
        self._queue: queue.SimpleQueue[tuple[int, str]] = queue.SimpleQueue()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        listener.settimeout(0.1)
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"lab-server-{self.port}", daemon=True
        )
        self._accept_thread.start()

    @property
    def accepted(self) -> int:
        """Number of connections accepted so far."""
        with self._lock:
            return len(self.conns)

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self.listener.accept()
            except (socket.timeout, BlockingIOError, InterruptedError):
                continue
            except OSError:
                if self._closed.is_set():
                    return
                time.sleep(0.05)
                continue
            with self._lock:
                if self._closed.is_set():
                    conn.close()
                    return
                self.conns.append(conn)
            conn.settimeout(0.2)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            with self._lock:
                self._threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        digest = hashlib.sha256()
        nbytes = 0
        buf = bytearray(256 * 1024)
        view = memoryview(buf)
        try:
            while not self._closed.is_set():
                try:
                    n = conn.recv_into(buf)
                except socket.timeout:
                    continue
                if n == 0:
                    break
                nbytes += n
                if self.mode == "sink":
                    digest.update(view[:n])
                else:
                    self._send_all(conn, view[:n])
            else:
                return
            if self.mode == "sink":
                result = (nbytes, digest.hexdigest())
                self.results.append(result)
                self._queue.put(result)
                try:
                    conn.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
        except OSError as err:
            if not self._closed.is_set():
                self.errors.append(err)
        finally:
            view.release()

    def _send_all(self, conn: socket.socket, data: memoryview) -> None:
        while data and not self._closed.is_set():
            try:
                sent = conn.send(data)
            except socket.timeout:
                continue
            data = data[sent:]

    def wait_result(self, timeout: float = 10.0) -> tuple[int, str]:
        """Return the next ``(nbytes, sha256hex)`` of a connection closed by its peer."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(
                f"no connection finished on port {self.port} within {timeout}s"
                f" (errors: {self.errors!r})"
            ) from None

    def close(self) -> None:
        """Stop accepting, close the listener and every accepted socket."""
        if self._closed.is_set():
            return
        self._closed.set()
        for sock in [self.listener, *self.conns]:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._accept_thread.join(2.0)
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(2.0)
        for sock in [self.listener, *self.conns]:
            sock.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _setns(fd: int, what: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"setns({what}): {os.strerror(e)}")


def _enter_netns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(fd, path)
    finally:
        os.close(fd)


class _NetnsWorker:
    """A daemon thread that lives in one network namespace and runs calls there.

    Built only from primitives written in C (a SimpleQueue, a plain lock): Ctrl-C
    and LabTerminated are raised in the main thread at any bytecode, and inside the
    pure-Python Condition and Semaphore of concurrent.futures they could leave a lock
    held for good: the worker then hung, and the process's exit with it (one demo in
    about 30 never exited after SIGTERM), or the caller got "cannot release
    un-acquired lock". A daemon, so the exit never waits for a stuck call.
    """

    def __init__(self, ns: str, path: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        threading.Thread(target=self._serve, args=(path,), name=f"lab-{ns}",
                         daemon=True).start()

    def _serve(self, path: str) -> None:
        entered: BaseException | None = None
        try:
            _enter_netns(path)
        except BaseException as err:  # every call then fails with it
            entered = err
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, args, kw, box, done = job
            try:
                if entered is not None:
                    raise entered
                box.append((True, fn(*args, **kw)))
            except BaseException as err:  # handed to the caller
                box.append((False, err))
            finally:
                done.release()
            del job, fn, args, kw, box, done

    def call(self, fn: Callable[..., _T], args: tuple[Any, ...], kw: dict[str, Any],
             timeout: float | None = None) -> _T:
        done = threading.Lock()
        done.acquire()
        box: list[tuple[bool, Any]] = []
        self._jobs.put((fn, args, kw, box, done))
        if not done.acquire(timeout=-1 if timeout is None else timeout):
            raise LabError(f"a call in the namespace did not return within {timeout}s")
        ok, value = box[0]
        if ok:
            return value  # type: ignore[no-any-return]
        raise value

    def stop(self) -> None:
        """Let the thread end once the calls queued before this one ran."""
        self._jobs.put(None)


# A sink server for Lab.sink_process: one listener per protocol given on the
# command line, a reader thread per connection, "PORTS p1 p2 ..." once listening.
_SINK_SERVER = r"""
import socket, sys, threading
def reader(c):
    with c:
        while c.recv(1 << 16):
            pass
def acceptor(s):
    while True:
        c, _ = s.accept()
        threading.Thread(target=reader, args=(c,), daemon=True).start()
ports = []
for proto in map(int, sys.argv[1:]):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, proto)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 0))
    s.listen(512)
    ports.append(s.getsockname()[1])
    threading.Thread(target=acceptor, args=(s,), daemon=True).start()
print("PORTS", *ports, flush=True)
threading.Event().wait()
"""


def _netns_inode() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


class Lab:
    """Two network namespaces joined by two veth pairs, with MPTCP set up.

    Parameters
    ----------
    prefix
        Start of the namespace names; :func:`cleanup_stale` uses it.
    userspace_pm
        Select the userspace path manager on the client (``pm_type=1``).
    endpoint
        With the in-kernel PM, add a ``subflow`` endpoint for the client's
        path-2 IPv4 address on ``c2``.
    ipv6
        Also configure ``fd00:n:1::/64`` and ``fd00:n:2::/64``.
    """

    def __init__(
        self,
        *,
        prefix: str = "mptcp",
        userspace_pm: bool = False,
        endpoint: bool = True,
        ipv6: bool = True,
    ) -> None:
        self.prefix = prefix
        self.userspace_pm = userspace_pm
        self.endpoint = endpoint and not userspace_pm
        self.ipv6 = ipv6
        self._closed = False
        self._close_lock = threading.RLock()
        self._namespaces: list[str] = []
        self._workers: dict[str, _NetnsWorker] = {}
        self._servers: list[Server] = []
        with _counter_lock:
            count = next(_counter)
            n = 0
            for i in range(250):
                cand = (count + i - 1) % 250 + 1
                if cand not in _nets_in_use:
                    n = cand
                    break
            if n == 0:
                raise LabError("more than 250 labs open in this process")
            _nets_in_use.add(n)
        self.net = n
        tag = f"{prefix}-{os.getpid()}-{count}-{secrets.token_hex(2)}"
        self.client_ns = f"{tag}-cli"
        self.server_ns = f"{tag}-srv"
        self.client_devs = ["c1", "c2"]
        self.server_devs = ["s1", "s2"]
        self.client_addrs: dict[str, list[str]] = {
            "v4": [f"10.{n}.1.2", f"10.{n}.2.2"],
            "v6": [f"fd00:{n:x}:1::2", f"fd00:{n:x}:2::2"] if ipv6 else [],
        }
        self.server_addrs: dict[str, list[str]] = {
            "v4": [f"10.{n}.1.1", f"10.{n}.2.1"],
            "v6": [f"fd00:{n:x}:1::1", f"fd00:{n:x}:2::1"] if ipv6 else [],
        }
        atexit.register(self.close)
        global _open_labs
        with _counter_lock:
            _open_labs += 1
        self._counted = True
        _hook_term_signals(True)
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    # -- setup -------------------------------------------------------------

    def _setup(self) -> None:
        cli, srv = self.client_ns, self.server_ns
        for ns in (cli, srv):
            _run(["ip", "netns", "add", ns])
            self._namespaces.append(ns)
        # Defaults first, so the veths inherit them. Without DAD off, the
        # link-local address stays tentative for a while and the first IPv6
        # SYN is lost (a 1 s retransmit).
        defaults = [
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
            "net.mptcp.enabled=1",
        ]
        for ns in (cli, srv):
            extra = ["net.mptcp.pm_type=1"] if ns == cli and self.userspace_pm else []
            self.sh(ns, "sysctl", "-q", "-w", *defaults, *extra)
        # Distinct ifindexes on the two ends: the kernel's linkwatch treats a
        # veth whose ifindex equals its peer's (both 2 in fresh namespaces) as a
        # non-urgent event and delays its carrier by up to 1 s, dropping packets.
        for i, (c, s) in enumerate(zip(self.client_devs, self.server_devs)):
            _run(["ip", "link", "add", c, "index", str(10 + i), "netns", cli,
                  "type", "veth", "peer", "name", s, "index", str(20 + i),
                  "netns", srv])
        for ns, devs in ((cli, self.client_devs), (srv, self.server_devs)):
            self.sh(ns, "sysctl", "-q", "-w",
                    *[f"net.ipv4.conf.{d}.rp_filter=0" for d in devs])
        for ns, devs, addrs in (
            (cli, self.client_devs, self.client_addrs),
            (srv, self.server_devs, self.server_addrs),
        ):
            self.ip(ns, "link", "set", "lo", "up")
            for i, dev in enumerate(devs):
                self.ip(ns, "addr", "add", f"{addrs['v4'][i]}/24", "dev", dev)
                if self.ipv6:
                    self.ip(ns, "-6", "addr", "add", f"{addrs['v6'][i]}/64",
                            "dev", dev, "nodad")
                self.ip(ns, "link", "set", dev, "up")
            self.ip(ns, "mptcp", "limits", "set", "subflows", "8",
                    "add_addr_accepted", "8")
        n = self.net
        self.ip(cli, "route", "add", f"10.{n}.1.0/24", "via",
                self.server_addrs["v4"][1], "dev", "c2", "metric", "1024")
        if self.ipv6:
            self.ip(cli, "-6", "route", "add", f"fd00:{n:x}:1::/64", "via",
                    self.server_addrs["v6"][1], "dev", "c2", "metric", "1024")
        if self.endpoint:
            self.ip(cli, "mptcp", "endpoint", "add", self.client_addrs["v4"][1],
                    "dev", "c2", "subflow")
        for ns, devs in ((cli, self.client_devs), (srv, self.server_devs)):
            self.wait_for(lambda: self._links_up(ns, devs), timeout=5.0,
                          what=f"{', '.join(devs)} to come up in {ns}")

    def _links_up(self, ns: str, devs: list[str]) -> bool:
        up = set()
        for line in self.ip(ns, "-o", "link", "show").splitlines():
            parts = line.split()
            if len(parts) > 1 and " state UP " in line:
                up.add(parts[1].rstrip(":").split("@", 1)[0])
        return all(d in up for d in devs)

    # -- plumbing ----------------------------------------------------------

    def _worker(self, ns: str) -> _NetnsWorker:
        with self._close_lock:
            if self._closed:
                raise LabError("the lab is closed")
            if ns not in self._namespaces:
                raise ValueError(f"{ns!r} is not a namespace of this lab")
            worker = self._workers.get(ns)
            if worker is None:
                path = os.path.join(_NETNS_DIR, ns)
                worker = _NetnsWorker(ns, path)
                self._workers[ns] = worker
                # Prove the worker really sits in the namespace before using it.
                if worker.call(_netns_inode, (), {}, timeout=10) != os.stat(path).st_ino:
                    raise LabError(f"worker thread for {ns} is not in that namespace")
            return worker

    def run_in(self, ns: str, fn: Callable[..., _T], *args: Any, **kw: Any) -> _T:
        """Run ``fn(*args, **kw)`` in a thread that lives in network namespace ``ns``."""
        return self._worker(ns).call(fn, args, kw)

    def socket(
        self,
        ns: str,
        family: int = _AF_INET,
        type: int = _SOCK_STREAM,
        proto: int = IPPROTO_MPTCP,
    ) -> Socket:
        """Create a socket in namespace ``ns`` (usable from any thread)."""
        return self.run_in(ns, socket.socket, family, type, proto)

    @contextlib.contextmanager
    def inside(self, ns: str) -> Iterator[None]:
        """Move the calling thread into namespace ``ns`` for the block, then back.

        For code that must not leave worker threads behind (a benchmark of the
        GIL-sensitive read path); sockets made inside stay in ``ns`` afterwards.
        """
        if ns not in self._namespaces:
            raise ValueError(f"{ns!r} is not a namespace of this lab")
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _enter_netns(os.path.join(_NETNS_DIR, ns))
            try:
                yield
            finally:
                _setns(home, "the thread's own namespace")
        finally:
            os.close(home)

    @contextlib.contextmanager
    def sink_process(self, *protos: int) -> Iterator[list[int]]:
        """Sink servers in their own process in the server namespace: one listener
        per protocol in ``protos`` (wildcard IPv4 address), each reading every
        connection until EOF. Yields their ports; the process is killed on exit.

        Unlike :meth:`start_server`, no Python thread of this process serves, so
        the measured process is left alone (benchmarks)."""
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.server_ns, sys.executable, "-c", _SINK_SERVER,
             *map(str, protos)],
            stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().split()
            if not line or line[0] != "PORTS":
                raise LabError(f"the sink process did not start (exit code {proc.poll()})")
            yield [int(p) for p in line[1:]]
        finally:
            proc.kill()
            proc.wait()

    def sh(self, ns: str, *args: str, check: bool = True) -> str:
        """Run a command in ``ns`` (``ip netns exec``) and return its stdout."""
        return _run(["ip", "netns", "exec", ns, *args], check=check)

    def ip(self, ns: str, *args: str, check: bool = True) -> str:
        """Run ``ip -n ns ARGS`` and return its stdout."""
        return _run(["ip", "-n", ns, *args], check=check)

    def ifindex(self, ns: str, dev: str) -> int:
        """Interface index of ``dev`` inside ``ns``."""
        return self.run_in(ns, socket.if_nametoindex, dev)

    @staticmethod
    def wait_for(
        pred: Callable[[], _T],
        timeout: float = 5.0,
        interval: float = 0.02,
        what: str = "condition",
    ) -> _T:
        """Poll ``pred()`` until it is truthy and return its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = pred()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(interval)

    # -- traffic -----------------------------------------------------------

    def start_server(
        self,
        *,
        family: int = _AF_INET,
        port: int = 0,
        proto: int = IPPROTO_MPTCP,
        mode: str = "sink",
    ) -> Server:
        """Listen on the wildcard address in the server namespace."""
        sock = self.socket(self.server_ns, family, socket.SOCK_STREAM, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
            sock.listen(64)
            server = Server(sock, mode)
        except BaseException:
            sock.close()
            raise
        self._servers.append(server)
        return server

    def connect(
        self,
        *,
        family: int = _AF_INET,
        server_addr: str | None = None,
        port: int,
        proto: int = IPPROTO_MPTCP,
        timeout: float | None = 5,
    ) -> Socket:
        """Connect from the client namespace (to the server's path-1 address by default)."""
        if server_addr is None:
            key = "v6" if family == socket.AF_INET6 else "v4"
            if not self.server_addrs[key]:
                raise LabError("this lab has no IPv6 addresses (ipv6=False)")
            server_addr = self.server_addrs[key][0]
        sock = self.socket(self.client_ns, family, socket.SOCK_STREAM, proto)
        try:
            sock.settimeout(timeout)
            sock.connect((server_addr, port))
        except BaseException:
            sock.close()
            raise
        return sock

    # -- inspection --------------------------------------------------------

    def ss_subflows(self, ns: str) -> list[dict[str, Any]]:
        """MPTCP subflows (TCP sockets with ``tcp-ulp-mptcp``) in ``ns``, from ``ss -tinH``."""
        return parse_ss_subflows(self.sh(ns, "ss", "-tinH"))

    # -- teardown ----------------------------------------------------------

    def close(self) -> None:
        """Stop servers and workers and delete every namespace made. Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        try:
            atexit.unregister(self.close)
        except Exception:
            pass
        for server in self._servers:
            try:
                server.close()
            except Exception:
                pass
        # Not waited for: that could hang on a stuck call, and the namespaces can be
        # deleted while a thread still sits in one.
        for worker in self._workers.values():
            worker.stop()
        self._workers.clear()
        errors = []
        for ns in reversed(self._namespaces):
            for attempt in range(5):
                try:
                    _run(["ip", "netns", "del", ns])
                    break
                except LabError as err:
                    if not os.path.exists(os.path.join(_NETNS_DIR, ns)):
                        break
                    if attempt == 4:
                        errors.append(str(err))
                    time.sleep(0.05)
        self._namespaces.clear()
        global _open_labs
        with _counter_lock:
            _nets_in_use.discard(self.net)
            if getattr(self, "_counted", False):
                self._counted = False
                _open_labs -= 1
            last = _open_labs == 0
        if last:
            _hook_term_signals(False)
        if errors:
            raise LabError("; ".join(errors))

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def namespaces(self) -> list[str]:
        """Names of the namespaces this lab made and has not deleted yet."""
        return list(self._namespaces)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Lab {self.client_ns}/{self.server_ns} net={self.net} {state}>"


wait_for = Lab.wait_for
