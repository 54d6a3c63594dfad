"""The command's JSON and its argument forms, without a kernel.

``mptcp ls --json`` writes records with generated encoders (``mptcp.cli._json``);
they must give the same data as ``json.dumps`` of the records as dicts (the
reference, ``jsonable``), tokens as 8 hex digits, for any field values.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mptcp
from mptcp.cli import _from_argument_check
from mptcp.cli._json import dumps_records, encoder, kind_of
from mptcp.cli._shared import jsonable, token_arg

ROOT = Path(__file__).resolve().parents[2]
NESTED = (mptcp.MPTCPInfo, mptcp.SubflowInfo, mptcp.DiagSubflow)

ints = st.one_of(st.none(), st.integers(0, 2**64 - 1))
u32s = st.one_of(st.none(), st.integers(0, 2**32 - 1))
bools = st.one_of(st.none(), st.booleans())
hosts = st.one_of(st.sampled_from(["10.1.2.2", "fd00:1:2::2", "::ffff:10.0.0.1"]), st.text(max_size=12))
addrs = st.one_of(st.none(), st.tuples(hosts, st.integers(0, 65535)))
flags = st.one_of(st.none(), st.integers(0, 511).map(mptcp.SubflowFlags))
states = st.one_of(st.sampled_from(list(mptcp.TCPState)), st.integers(0, 255))


def _record(cls: type, overrides: dict[str, Any]) -> st.SearchStrategy[Any]:
    fields = {}
    for name in cls._fields:  # type: ignore[attr-defined]
        if name in overrides:
            fields[name] = overrides[name]
        elif kind_of(cls, name, {}) == "bool":
            fields[name] = bools
        elif kind_of(cls, name, {}) == "addr":
            fields[name] = addrs
        elif name in ("token", "token_rem"):
            fields[name] = u32s
        else:
            fields[name] = ints
    return st.fixed_dictionaries(fields).map(lambda d: cls(**d))


infos = _record(mptcp.MPTCPInfo, {})
subflows = _record(mptcp.SubflowInfo, {"state": st.one_of(st.none(), states)})
diags = _record(mptcp.DiagSubflow, {"flags": flags, "if_index": st.integers(0, 2**32 - 1)})
connections = _record(mptcp.Connection, {
    "state": states, "info": st.one_of(st.none(), infos), "subflows": st.lists(subflows, max_size=3),
    "subflow_diag": st.lists(diags, max_size=3), "family": st.sampled_from([2, 10]),
    "if_index": st.integers(0, 2**32 - 1), "uid": st.integers(0, 2**32 - 1),
    "inode": st.integers(0, 2**32 - 1)})


def _hex(t: Optional[int]) -> Optional[str]:
    return None if t is None else f"{t:08x}"


@settings(max_examples=300, deadline=None)
@given(st.lists(connections, max_size=4))
def test_ls_json_is_the_records_as_dicts(conns: list[Any]) -> None:
    text = dumps_records(conns, mptcp.Connection, NESTED)
    assert json.loads(text) == json.loads(json.dumps([jsonable(c) for c in conns]))


@settings(max_examples=100, deadline=None)
@given(connections)
def test_tokens_are_hex_text(c: Any) -> None:
    (got,) = json.loads(dumps_records([c], mptcp.Connection, NESTED))
    assert got["token"] == _hex(c.token)
    assert got["info"] is None or got["info"]["token"] == _hex(c.info.token)
    assert [(d["token"], d["token_rem"]) for d in got["subflow_diag"]] == \
        [(_hex(d.token), _hex(d.token_rem)) for d in c.subflow_diag]
    assert got["state"] == int(c.state) and type(got["state"]) is int


def test_every_field_has_a_fast_encoding() -> None:
    # A field falling back to json.dumps still gives valid JSON, but slowly: the
    # records of ls must not need it.
    names = {c.__name__: c for c in NESTED}
    for cls in (mptcp.Connection, *NESTED):
        for field in cls._fields:
            assert kind_of(cls, field, names) != "json", (cls.__name__, field)
    assert encoder(mptcp.Connection, NESTED) is encoder(mptcp.Connection, NESTED)


def test_unknown_field_types_still_give_json() -> None:
    from typing import NamedTuple

    class Odd(NamedTuple):
        name: str
        where: "dict[str, int]"
        token: Optional[int]

    text = dumps_records([Odd('quo"te\n', {"a": 1}, 3)], Odd)
    assert json.loads(text) == [{"name": 'quo"te\n', "where": {"a": 1}, "token": "00000003"}]


def test_event_json_token_is_hex() -> None:
    from mptcp.cli.monitor import event_json

    ev = mptcp.Event(mptcp.EventType.CREATED, token=0x9A8B9C83, local=("10.0.0.1", 5))
    assert json.loads(json.dumps(event_json(ev)))["token"] == "9a8b9c83"


@pytest.mark.parametrize("text,value", [
    ("9a8b9c83", 0x9A8B9C83), ("0x9A8B9C83", 0x9A8B9C83), ("0X0000beef", 0xBEEF),
    ("7b795a", 0x7B795A), ("ffffffff", 0xFFFFFFFF), ("1", 1)])
def test_token_arg_takes_hex_with_or_without_0x(text: str, value: int) -> None:
    assert token_arg(text) == value


@pytest.mark.parametrize("text", ["", "0x", "123456789", "0x123456789", "-1", "+1", " 1", "dead_bee",
                                  "12g", "0", "0x0"])
def test_token_arg_refuses(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as info:
        token_arg(text)
    assert "does not fit in 32 bits" not in str(info.value)


def _raised_in(code: str, name: str) -> BaseException:
    env: dict[str, Any] = {"__name__": name}
    exec(compile(f"def f():\n    {code}\n", name, "exec"), env)
    try:
        env["f"]()
    except Exception as err:  # noqa: BLE001
        return err
    raise AssertionError("nothing raised")


def test_argument_errors_of_the_library_are_usage_errors() -> None:
    from mptcp import _args

    with pytest.raises(ValueError) as info:
        _args.address_id("id", 300)
    assert _from_argument_check(info.value)
    with pytest.raises(TypeError) as tinfo:
        _args.flag("backup", 1)
    assert _from_argument_check(tinfo.value)
    # raised by the command layer or outside the package: not the user's input
    for where in ("mptcp.cli.ls", "mptcp._lab", "json", "__main__"):
        assert not _from_argument_check(_raised_in("raise ValueError('x')", where)), where
    assert _from_argument_check(_raised_in("raise ValueError('x')", "mptcp.pm"))


def test_readme_documents_every_exit_status() -> None:
    from mptcp import cli

    text = (ROOT / "README.md").read_text()
    section = re.search(r"^## The command\n(.*?)(?=^## )", text, re.S | re.M)
    assert section is not None
    body = section.group(1)
    for code in (cli.EXIT_OK, cli.EXIT_FAILURE, cli.EXIT_USAGE, cli.EXIT_INTERRUPTED):
        assert re.search(rf"\| `{code}` \|", body), code
    assert "128+N" in body


def test_benchmarks_measure_what_import_finds() -> None:
    # A benchmark that puts src/ on sys.path imports a tree without a built core
    # (a circular-import error after `pip install .`); each says what it measures.
    for path in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        text = path.read_text()
        assert not re.search(r"sys\.path\.insert\([^)]*src", text), path.name
        assert not re.search(r'PYTHONPATH.*\bSRC\b|"src"\)\s*$', text, re.M), path.name
        assert "_which" in text, f"{path.name} does not say which mptcp it measures"


def test_quick_ls_parse_equals_argparse() -> None:
    import itertools

    from mptcp import cli
    from mptcp.cli import ls

    forms = [list(p) for n in range(3) for p in itertools.permutations(ls.FLAGS, n)]
    for argv in (["ls", *f] for f in forms):
        quick = cli._quick(argv)
        assert quick is not None, argv
        assert vars(quick) == vars(cli.build_parser().parse_args(argv)), argv
    for argv in (["ls", "--js"], ["ls", "-h"], ["ls", "--json", "--json"], ["ls", "x"], ["top"], []):
        assert cli._quick(argv) is None, argv


def test_stop_is_not_swallowed_by_except_exception() -> None:
    # SIGTERM while the exporter finishes a request: socketserver's handler
    # catches Exception and goes on serving, so the exporter never stopped.
    from mptcp.cli._shared import Stop

    assert not issubclass(Stop, Exception) and issubclass(Stop, BaseException)
    with pytest.raises(Stop):
        try:
            raise Stop()
        except Exception:  # noqa: BLE001 - what the caught code does
            pass


@given(host=st.sampled_from(["10.1.2.2", "fd00:1:2::2", "::ffff:10.0.0.1", "fe80::1"]),
       port=st.integers(0, 0xFFFF), dev=st.sampled_from([None, "c2", "eth0.100"]))
def test_hostport_text_reads_back(host: str, port: int, dev: Optional[str]) -> None:
    # What `ls` prints (ss's form: `[fd00::1]%c2:80`) is what `sockopt` and the
    # recording's loader read back.
    from mptcp._addr import hostport, parse_hostport
    assert parse_hostport(hostport((host, port), dev)) == (host, port)
    if dev is not None and ":" in host:  # the scope inside the brackets, as URLs write it
        assert parse_hostport(f"[{host}%{dev}]:{port}") == (host, port)
    for bad in (f"[{host}:{port}", f"[{host}]x:{port}"):
        with pytest.raises(ValueError):
            parse_hostport(bad)
