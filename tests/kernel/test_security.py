"""Security properties: no process spawning, checked environment, per-connection
path-manager commands, and no namespace left behind on SIGINT/SIGTERM.

* Only the command layer (``cli``, whose ``demo`` uses the lab) and the namespace
  lab (``_lab``) may run ``ip``:
  every other module is checked by AST for a way to start a process, and a
  representative run of the library in a child process with an audit hook
  (``sys.addaudithook``) must fire no process-creation event.
* The environment variables the library reads (``MPTCP_BACKEND``,
  ``MPTCP_NO_FULL_INFO``) are the only ones, and invalid values give a clear
  error or are ignored as the README documents.
* ``open_sub``/``close_sub``/``set_sub_prio`` act only on the connection of the
  socket passed (its token), and PathManager calls only on the token given.
* ``mptcp demo`` and a :class:`~mptcp._lab.Lab` in a child process remove their
  namespaces on SIGINT and SIGTERM (SIGTERM becomes ``mptcp._lab.LabTerminated``,
  a ``KeyboardInterrupt``, while a lab is open); so does a pytest run using the
  lab fixtures.
"""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mptcp
from mptcp._lab import Lab
from tests.outside import ss_mptcp

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"  # the sources this checkout ships (scanned)
PKG = SRC / "mptcp"
IMPORT_ROOT = Path(mptcp.__file__).resolve().parents[1]  # where children import mptcp from
ALLOWED_TO_SPAWN = {"_lab", "cli"}  # the command layer and the namespace lab run `ip`


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(IMPORT_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    for k in ("MPTCP_BACKEND", "MPTCP_NO_FULL_INFO"):
        env.pop(k, None)
    env.update(extra)
    return env


def in_client(lab: Lab, fn: Any, *args: Any, **kw: Any) -> Any:
    return lab.run_in(lab.client_ns, fn, *args, **kw)


# --------------------------------------------------------------------------------
# No library code path spawns a process
# --------------------------------------------------------------------------------
def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(parts) or "__init__"


def _library_modules() -> list[str]:
    return sorted(_module_name(p) for p in PKG.rglob("*.py")
                  if _module_name(p).split(".")[0] not in ALLOWED_TO_SPAWN)


_SPAWN_MODULES = {"subprocess", "pty", "multiprocessing", "concurrent.futures.process",
                  "asyncio.subprocess"}
_SPAWN_ATTR = re.compile(r"^(system|popen|fork|forkpty|posix_spawnp?|exec[lv]p?e?|spawn[lv]p?e?"
                         r"|create_subprocess_(exec|shell)|find_library|startfile)$")


def _spawn_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name in _SPAWN_MODULES or a.name.split(".")[0] in {"subprocess", "pty"}:
                    found.append(f"{where} import {a.name}")
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if mod in _SPAWN_MODULES or mod.split(".")[0] in {"subprocess", "pty"}:
                found.append(f"{where} from {mod} import ...")
            for a in node.names:
                if _SPAWN_ATTR.match(a.name) or a.name in {"subprocess", "pty"}:
                    found.append(f"{where} from {mod} import {a.name}")
        elif isinstance(node, ast.Attribute) and _SPAWN_ATTR.match(node.attr):
            # os.system, os.popen, os.exec*, os.spawn*, os.fork, pty.spawn-alikes,
            # ctypes.util.find_library (runs ldconfig/gcc), whatever the module alias
            found.append(f"{where} .{node.attr}")
        elif isinstance(node, ast.Attribute) and node.attr == "spawn" and \
                isinstance(node.value, ast.Name) and node.value.id == "pty":
            found.append(f"{where} pty.spawn")
        elif isinstance(node, ast.Constant) and node.value in ("subprocess", "pty", "os.system"):
            found.append(f"{where} string {node.value!r} (dynamic import?)")
    return found


def test_no_library_module_can_spawn_a_process() -> None:
    mods = _library_modules()
    assert {"_api", "_backends", "_events", "_netlink", "pm", "diag", "_backends.upstream.control",
            "exporter", "_backends.draft"} <= set(mods), mods
    problems = {}
    for m in mods:
        if m != "__main__":  # which would run the command line
            assert __import__(f"mptcp.{m}", fromlist=["_"]) is not None
        path = PKG.joinpath(*m.split(".")).with_suffix(".py")
        uses = _spawn_uses(path if path.exists() else PKG.joinpath(*m.split("."), "__init__.py"))
        if uses:
            problems[m] = uses
    assert not problems, f"process-spawning code outside _lab/cli: {problems}"
    # The compiled core: no libc process calls either.
    core_sources = [*SRC.glob("*.pyx"), *SRC.glob("*.pxi"), *SRC.glob("*.pxd"),
                    *(REPO / "include").glob("*.h")]
    assert core_sources
    pat = re.compile(r"\b(system|popen|v?fork|execv\w*|execl\w*|posix_spawn\w*|clone)\s*\(")
    for path in core_sources:
        for i, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0] if path.suffix != ".h" else line.split("//", 1)[0]
            assert not pat.search(code), f"{path.name}:{i}: {line.strip()}"


def test_the_checker_sees_spawning(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(textwrap.dedent("""
        import os as o
        from subprocess import run
        import pty
        def f():
            o.system("x"); o.execvp("x", []); o.posix_spawn("x", [], {}); pty.spawn("x")
            __import__("subprocess")
    """))
    uses = " ".join(_spawn_uses(bad))
    for what in ("from subprocess", "import pty", ".system", ".execvp", ".posix_spawn",
                 "pty.spawn", "'subprocess'"):
        assert what in uses, (what, uses)


_AUDIT_CHILD = r"""
import json, re, socket, sys
BAD = {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.fork",
       "os.forkpty", "os.spawn", "pty.spawn"}
SYMS = re.compile(r"^(system|popen|v?fork|clone3?|exec\w*|posix_spawnp?)$")
fired = []
def hook(event, args):
    if event in BAD or (event == "ctypes.dlsym" and len(args) > 1 and isinstance(args[1], str)
                        and SYMS.match(args[1])):
        fired.append([event, repr(args)[:200]])
sys.addaudithook(hook)

import mptcp
from mptcp import PathManager

port, c2, s1, s2 = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
done = []
def step(name, fn, *exc):
    try:
        fn()
    except exc:
        pass
    done.append(name)

assert mptcp.backend() == "upstream"
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
s.settimeout(10)
s.connect((s1, port))
s.sendall(b"x" * 1000)
assert s.recv(1000)
step("is_mptcp", lambda: mptcp.is_mptcp(s))
step("info", lambda: mptcp.info(s))
step("subflows", lambda: mptcp.subflows(s))
step("get_sub_ids", lambda: mptcp.get_sub_ids(s))
step("get_sub_tuple", lambda: mptcp.get_sub_tuple(s, mptcp.get_sub_ids(s)[0]))
def poller():
    with mptcp.Poller(s) as p:
        p.poll(); p.snapshot(); p.info.subflows
step("Poller", poller)
with mptcp.events(token=s) as mon:
    sf = mptcp.open_sub(s, local=c2, remote=s2)
    done.append("open_sub")
    step("events", lambda: mon.next(timeout=5))
step("set_sub_prio", lambda: mptcp.set_sub_prio(s, sf.id, True))
step("get_sub_sockopt_int", lambda: mptcp.get_sub_sockopt_int(s, sf.id, socket.IPPROTO_TCP,
                                                                socket.TCP_MAXSEG))
step("set_sub_sockopt_int", lambda: mptcp.set_sub_sockopt_int(s, sf.id, socket.IPPROTO_TCP,
                                                                socket.TCP_MAXSEG, 1000),
     mptcp.UnsupportedOperationError)
step("close_sub", lambda: mptcp.close_sub(s, sf.id))
def ctx():
    with mptcp.subflow(s, local=c2, remote=s1):
        pass
step("subflow", ctx)
step("errors", lambda: mptcp.get_sub_tuple(s, 4242), mptcp.SubflowNotFoundError)
step("bad fd", lambda: mptcp.get_sub_ids(99999), mptcp.MPTCPError)
with PathManager() as pm:
    step("pm.mode", lambda: pm.mode)
    step("pm.endpoints", pm.endpoints)
    lim = pm.limits()
    done.append("pm.limits")
    step("pm.set_limits", lambda: pm.set_limits(subflows=lim.subflows,
                                                add_addr_accepted=lim.add_addr_accepted))
    def endpoint():
        pm.add_endpoint(c2, id=77, subflow=True)
        pm.remove_endpoint(77)
    step("pm.add/remove_endpoint", endpoint)
step("connections", lambda: mptcp.connections(listening=True))
s.close()
lib_fired = list(fired)
# positive control: the hook does see a process being started
import subprocess
subprocess.run([sys.executable, "-c", "pass"], check=True)
print(json.dumps({"lib_fired": lib_fired, "control": fired[len(lib_fired):], "done": done}))
"""


def test_library_calls_start_no_process(ulab: Lab) -> None:
    srv = ulab.start_server(mode="echo")
    c1, c2 = ulab.client_addrs["v4"]
    s1, s2 = ulab.server_addrs["v4"]
    proc = subprocess.run(
        ["ip", "netns", "exec", ulab.client_ns, sys.executable, "-c", _AUDIT_CHILD,
         str(srv.port), c2, s1, s2],
        capture_output=True, text=True, timeout=60, env=_env(),
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["lib_fired"] == [], out["lib_fired"]
    assert any(ev == "subprocess.Popen" for ev, _ in out["control"]), out["control"]
    assert len(out["done"]) >= 20, out["done"]


# --------------------------------------------------------------------------------
# Nothing trusts a value from the environment unchecked
# --------------------------------------------------------------------------------
_ENV_READ = re.compile(r"""(?:environ(?:\.get)?\s*(?:\[|\()\s*|getenv\s*\(\s*)["']([A-Za-z0-9_]+)["']""")


def test_only_known_environment_variables_are_read() -> None:
    names: dict[str, set[str]] = {}
    for path in [*PKG.rglob("*.py"), *SRC.glob("*.pyx"), *SRC.glob("*.pxi")]:
        if path.suffix == ".py" and _module_name(path).split(".")[0] in ALLOWED_TO_SPAWN:
            continue
        text = path.read_text()
        for name in _ENV_READ.findall(text):
            names.setdefault(name, set()).add(path.name)
        # any other way of reading the environment would escape this test
        for other in ("os.environ.items", "os.environ.copy", "environb", "os.getenvb",
                      "dict(os.environ"):
            assert other not in text, f"{path.name} reads the environment via {other}"
    # A new variable needs a test here that invalid values are handled.
    assert set(names) == {"MPTCP_BACKEND", "MPTCP_NO_FULL_INFO"}, names


_ENV_CHILD = r"""
import json, socket, sys
import mptcp
lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
lst.bind(("127.0.0.1", 0)); lst.listen()
cli = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
cli.connect(lst.getsockname()); srv, _ = lst.accept()
cli.sendall(b"x"); srv.recv(1)
out = {}
for name, fn in [("backend", mptcp.backend), ("get_sub_ids", lambda: mptcp.get_sub_ids(cli)),
                 ("subflow_ids", lambda: [s.id for s in mptcp.subflows(cli)]),
                 ("poller", lambda: mptcp.Poller(cli).poll())]:
    try:
        out[name] = ["ok", fn()]
    except Exception as e:
        out[name] = [type(e).__name__, str(e)]
print(json.dumps(out))
"""


def _env_child(**env: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", _ENV_CHILD], capture_output=True, text=True,
                          timeout=30, env=_env(**env))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_invalid_mptcp_backend_is_a_clear_error() -> None:
    out = _env_child(MPTCP_BACKEND="bogus")
    for call in ("backend", "get_sub_ids", "subflow_ids", "poller"):
        kind, msg = out[call]
        assert kind == "ValueError", out
        assert "MPTCP_BACKEND" in msg and "bogus" in msg and "upstream" in msg, msg
    # a path or a shell string is just another invalid value, never used
    out = _env_child(MPTCP_BACKEND="/tmp/evil.so; id")
    assert out["backend"][0] == "ValueError" and "MPTCP_BACKEND" in out["backend"][1]


def test_valid_mptcp_backend_spellings() -> None:
    assert _env_child(MPTCP_BACKEND=" Upstream ")["subflow_ids"] == ["ok", [1]]
    assert _env_child(MPTCP_BACKEND="")["backend"] == ["ok", "upstream"]
    # forcing the draft backend on a kernel without it: documented UnsupportedOperationError
    out = _env_child(MPTCP_BACKEND="draft")
    assert out["backend"] == ["ok", "draft"]
    assert out["get_sub_ids"][0] == "UnsupportedOperationError", out
    assert "MPTCP_BACKEND=draft" in out["get_sub_ids"][1]


@pytest.mark.parametrize("value", ["yes", "true", "0", "", " 1", "2"])
def test_mptcp_no_full_info_other_than_1_is_ignored(value: str) -> None:
    # README: "MPTCP_NO_FULL_INFO=1 uses the pre-6.5 read path"; nothing else does.
    out = _env_child(MPTCP_NO_FULL_INFO=value)
    assert out["subflow_ids"] == ["ok", [1]], out
    assert out["poller"] == ["ok", 1], out


def test_mptcp_no_full_info_1_selects_the_old_read_path() -> None:
    out = _env_child(MPTCP_NO_FULL_INFO="1")
    assert out["subflow_ids"] == ["ok", [None]], out  # MPTCP_TCPINFO path: no ids
    assert out["poller"][0] == "KernelTooOldError" and "FULL_INFO" in out["poller"][1], out


# --------------------------------------------------------------------------------
# Path-manager commands act only on the caller's connection
# --------------------------------------------------------------------------------
def _state_of(lab: Lab, sock: socket.socket, token: int) -> dict[str, Any]:
    subs = sorted((s.id, s.local, s.remote) for s in mptcp.subflows(sock))
    prios = {i: in_client(lab, mptcp.get_sub_tuple, sock, i).prio for i, _, _ in subs}
    ss = sorted((tuple(r["local"]), tuple(r["remote"]), r["state"], r["backup_local"],
                 r["backup_remote"], r["loc_id"], r["rem_id"])
                for r in lab.ss_subflows(lab.client_ns) if r["token"] == token)
    return {"subflows": subs, "prio": prios, "ss": ss}


def _wait_settled(lab: Lab, sock: socket.socket, token: int) -> dict[str, Any]:
    # two equal readings in a row (MP_PRIO and closes are asynchronous)
    prev = _state_of(lab, sock, token)
    for _ in range(50):
        time.sleep(0.05)
        cur = _state_of(lab, sock, token)
        if cur == prev:
            return cur
        prev = cur
    return prev


def test_pm_commands_act_only_on_the_callers_connection(ulab: Lab) -> None:
    from mptcp import PathManager

    lab = ulab
    c1, c2 = lab.client_addrs["v4"]
    s1, s2 = lab.server_addrs["v4"]
    srv = lab.start_server(mode="echo")
    a = lab.connect(port=srv.port)
    b = lab.connect(port=srv.port)
    pm = in_client(lab, PathManager)
    try:
        for s in (a, b):
            s.sendall(b"hello")
            assert s.recv(5) == b"hello"
        tok_a, tok_b = mptcp.info(a).token, mptcp.info(b).token
        assert tok_a and tok_b and tok_a != tok_b
        # B gets subflows 2 and 3; A has only its initial subflow 1
        b2 = in_client(lab, mptcp.open_sub, b, local=c2, remote=s2)
        b3 = in_client(lab, mptcp.open_sub, b, local=c2, remote=s1)
        assert mptcp.get_sub_ids(b) == [1, b2.id, b3.id] and b3.id == 3
        assert mptcp.get_sub_ids(a) == [1]
        before = _wait_settled(lab, b, tok_b)
        assert len(before["ss"]) == 3, before

        # the seed calls on A
        a2 = in_client(lab, mptcp.open_sub, a, local=c2, remote=s2)
        assert a2.id == 2 and mptcp.get_sub_ids(a) == [1, 2]
        in_client(lab, mptcp.set_sub_prio, a, a2.id, True)
        in_client(lab, mptcp.set_sub_prio, a, 1, True)
        lab.wait_for(lambda: in_client(lab, mptcp.get_sub_tuple, a, 1).prio == 1,
                     what="A's subflow 1 to become backup")
        in_client(lab, mptcp.set_sub_prio, a, 1, False)
        in_client(lab, mptcp.close_sub, a, a2.id)
        # id 3 exists only on B: per connection, A has none
        for call, args in ((mptcp.close_sub, (b3.id,)), (mptcp.set_sub_prio, (b3.id, True)),
                           (mptcp.get_sub_tuple, (b3.id,))):
            with pytest.raises(mptcp.SubflowNotFoundError, match=f"{b3.id}"):
                in_client(lab, call, a, *args)
        assert _wait_settled(lab, b, tok_b) == before

        # PathManager calls with an explicit int token: A's token never reaches B's
        # subflows, even with B's exact 4-tuples
        with pytest.raises(mptcp.SubflowNotFoundError):
            in_client(lab, pm.destroy_subflow, tok_a, b3.local, b3.remote)
        # The kernel answers SET_FLAGS for an unknown tuple with EINVAL + extack
        # "subflow not found": the same class as DESTROY's ESRCH (SubflowNotFoundError:
        # "no subflow with that id or tuple", README, Errors)
        with pytest.raises(mptcp.SubflowNotFoundError, match="subflow not found"):
            in_client(lab, pm.set_backup, tok_a, b2.local, b2.remote, True)
        in_client(lab, pm.create_subflow, tok_a, c2, (s1, srv.port))
        lab.wait_for(lambda: len(mptcp.get_sub_ids(a)) == 2, what="A's new subflow")
        new = [sf for sf in mptcp.subflows(a) if sf.id != 1][0]
        in_client(lab, pm.destroy_subflow, tok_a, new.local, new.remote)
        lab.wait_for(lambda: mptcp.get_sub_ids(a) == [1], what="A's subflow to close")
        assert _wait_settled(lab, b, tok_b) == before

        # B still moves data over what it had; A too
        for s in (a, b):
            s.sendall(b"again")
            assert s.recv(5) == b"again"

        # a stale token (A aborted, so its token is freed at once) is refused, B untouched
        a.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        a.close()
        lab.wait_for(lambda: not any(r["token"] == tok_a for r in ss_mptcp(lab, lab.client_ns)),
                     what="A to go away")
        with pytest.raises(mptcp.NotMPTCPError, match="token"):
            in_client(lab, pm.destroy_subflow, tok_a, b2.local, b2.remote)
        assert _wait_settled(lab, b, tok_b) == before
    finally:
        in_client(lab, pm.close)
        a.close()
        b.close()


# --------------------------------------------------------------------------------
# Namespaces are removed on SIGINT and SIGTERM
# --------------------------------------------------------------------------------
def _netns_with(prefix: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir("/run/netns") if n.startswith(prefix))
    except FileNotFoundError:
        return []


def _wait(pred: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def reap() -> Iterator[list[str]]:
    """Prefixes of namespaces a test's children may leave behind: removed after it."""
    prefixes: list[str] = []
    yield prefixes
    for p in prefixes:
        for ns in _netns_with(p):
            subprocess.run(["ip", "netns", "del", ns], check=False)


def _stop_child(proc: subprocess.Popen[str], sig: int, prefix: str) -> tuple[int, str, str]:
    os.killpg(proc.pid, sig)  # as a terminal or a service manager would: the whole group
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"did not exit after {signal.Signals(sig).name}: {err[-2000:]}")
    # gone within a few seconds of the exit (normally already when it exits)
    _wait(lambda: not _netns_with(prefix), 5, f"{prefix}* namespaces to be removed")
    return proc.returncode, out, err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_demo_removes_namespaces_on_signal(sig: int, reap: list[str]) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "mptcp", "demo", "--size", "64"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(), start_new_session=True)
    prefix = f"mptcpdemo-{proc.pid}-"
    reap.append(prefix)
    try:
        assert proc.stdout is not None
        # mid-transfer: after the backup subflow was opened
        deadline = time.monotonic() + 30
        for line in proc.stdout:
            if line.startswith("open_sub -> ") or time.monotonic() > deadline:
                break
        assert len(_netns_with(prefix)) == 2, _netns_with(prefix)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    rc, _, err = _stop_child(proc, sig, prefix)
    assert rc != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mptcp"), err
    if sig == signal.SIGINT:
        assert rc == 130 and lines[0] == "mptcp: interrupted", (rc, err)
    else:
        assert rc == 128 + signal.SIGTERM and "SIGTERM" in lines[0], (rc, err)


_LAB_CHILD = r"""
import sys, time
from mptcp._lab import Lab
if sys.argv[1] == "with":
    with Lab(prefix="mptcp") as lab:
        srv = lab.start_server()
        s = lab.connect(port=srv.port)
        print("ready", lab.client_ns, flush=True)
        while True:
            s.sendall(b"x" * 65536)
            time.sleep(0.01)
else:
    lab = Lab(prefix="mptcp")  # no with: atexit removes it
    print("ready", lab.client_ns, flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize("how", ["with", "atexit"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_lab_in_a_child_removes_namespaces_on_signal(sig: int, how: str,
                                                     reap: list[str]) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _LAB_CHILD, how], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(),
                            start_new_session=True)
    prefix = f"mptcp-{proc.pid}-"
    reap.append(prefix)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("ready"), proc.stderr.read()  # type: ignore[union-attr]
        assert len(_netns_with(prefix)) == 2
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    rc, _, err = _stop_child(proc, sig, prefix)
    assert rc != 0
    assert "KeyboardInterrupt" in err or "LabTerminated: terminated by SIGTERM" in err, err


_SIGNAL_STATE_CHILD = r"""
import signal
from mptcp._lab import Lab, _on_term_signal
assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
with Lab(prefix="mptcp", ipv6=False):
    assert signal.getsignal(signal.SIGTERM) is _on_term_signal
    with Lab(prefix="mptcp", ipv6=False):
        pass
    assert signal.getsignal(signal.SIGTERM) is _on_term_signal  # one lab still open
assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored after the last
mine = lambda *a: None
signal.signal(signal.SIGTERM, mine)
with Lab(prefix="mptcp", ipv6=False):
    assert signal.getsignal(signal.SIGTERM) is mine  # a handler of the program's own stays
print("ok")
"""


def test_lab_signal_handler_is_scoped_and_polite() -> None:
    proc = subprocess.run([sys.executable, "-c", _SIGNAL_STATE_CHILD], capture_output=True,
                          text=True, timeout=60, env=_env())
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


_PYTEST_CHILD = """
import time

def test_sleeps(lab):
    print("ready", lab.client_ns, flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_pytest_lab_fixture_removes_namespaces_on_signal(sig: int, tmp_path: Path,
                                                         reap: list[str]) -> None:
    test = tmp_path / "test_child_sleeps.py"
    test.write_text(_PYTEST_CHILD)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-s", "-q", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), str(test)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(REPO),
        env=_env(PYTHONPATH=os.pathsep.join([str(IMPORT_ROOT), str(REPO)])), start_new_session=True)
    prefix = f"mptcp-{proc.pid}-"
    reap.append(prefix)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        for line in proc.stdout:
            if "ready" in line or time.monotonic() > deadline:
                break
        assert len(_netns_with(prefix)) == 2, (_netns_with(prefix), proc.stderr)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    rc, out, err = _stop_child(proc, sig, prefix)
    # pytest ends the session as on Ctrl-C (exit status 2), after the fixture's
    # teardown removed the lab
    assert rc == pytest.ExitCode.INTERRUPTED, (rc, out[-2000:], err[-2000:])
    want = "KeyboardInterrupt" if sig == signal.SIGINT else "LabTerminated: terminated by SIGTERM"
    assert want in out + err, (out[-2000:], err[-2000:])
