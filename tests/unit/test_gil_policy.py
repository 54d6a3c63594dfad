"""When the core keeps the GIL around a short sockopt read: only when no other
Python thread (and no other interpreter) exists. Checked in a fresh child, since
the test session itself may have threads."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import mptcp

_CHILD = r"""
import json, sys, threading
sys.path.insert(0, sys.argv[1])
from mptcp import _mptcp as core
seen = {"alone": core.is_only_python_thread()}
stop = threading.Event()
t = threading.Thread(target=stop.wait)
t.start()
seen["thread_alive"] = core.is_only_python_thread()
stop.set()
t.join()
seen["thread_joined"] = core.is_only_python_thread()
try:
    import _interpreters as subinterpreters          # 3.13+
except ImportError:
    import _xxsubinterpreters as subinterpreters     # 3.10 to 3.12
interp = subinterpreters.create()
seen["subinterpreter_alive"] = core.is_only_python_thread()
subinterpreters.destroy(interp)
seen["subinterpreter_destroyed"] = core.is_only_python_thread()
print(json.dumps(seen))
"""


def test_gil_kept_only_when_no_other_thread_or_interpreter_exists() -> None:
    src = str(pathlib.Path(mptcp.__file__).resolve().parents[1])
    proc = subprocess.run([sys.executable, "-c", _CHILD, src], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "alone": True,
        "thread_alive": False,
        "thread_joined": True,
        "subinterpreter_alive": False,
        "subinterpreter_destroyed": True,
    }
