"""JSON text of the library's records, fast enough for ``mptcp ls --json`` at
thousands of connections.

Turning records into dicts and handing them to :func:`json.dumps` cost more than
the sock_diag dump itself (at 1,000 connections about 130 key-value pairs per
connection: 20 ms of dicts, 40 ms of encoding). Here each record class gets one
encoder function, generated once from its fields: a single f-string with the JSON
keys already in it, so a record costs one call and no intermediate dict. A
field's encoding follows its annotation (ints, bools, ``(host, port)`` addresses,
nested records, lists of records); tokens are 8 hex digits, as everywhere in the
command. A field whose annotation is not one of those is encoded by
:func:`json.dumps`, so a new field of any type still gives valid JSON.

The output is the same data as ``json.dumps`` of the records as dicts (compact
separators); ``tests/unit/test_cli_json.py`` checks that, field by field.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii as _q
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from .._addr import token_hex
from ._shared import TOKEN_FIELDS

__all__ = ["encoder", "dumps_records", "kind_of"]

_INT = {"int", "Optional[int]"}
_BOOL = {"bool", "Optional[bool]"}
_ADDR = {"Address", "Optional[Address]"}
# IntEnum/IntFlag fields: their int value.
_ENUM = {"Optional[SubflowFlags]", "SubflowFlags", "TCPState", "Optional[TCPState]"}


def _annotation(cls: type, field: str) -> str:
    ann = cls.__annotations__.get(field)
    text = getattr(ann, "__forward_arg__", ann)
    return text if isinstance(text, str) else getattr(text, "__name__", repr(text))


def kind_of(cls: type, field: str, nested: Dict[str, type]) -> str:
    """How ``cls.field`` is encoded: token, int, bool, addr, record:NAME, list:NAME or json."""
    if field in TOKEN_FIELDS:
        return "token"
    ann = _annotation(cls, field)
    if ann in _INT or ann in _ENUM:
        return "int"
    if ann in _BOOL:
        return "bool"
    if ann in _ADDR:
        return "addr"
    for name in nested:
        if ann in (name, f"Optional[{name}]"):
            return f"record:{name}"
        if ann in (f"List[{name}]", f"list[{name}]"):
            return f"list:{name}"
    return "json"


def _addr(a: Optional[Tuple[str, int]]) -> str:
    return "null" if a is None else f"[{_q(a[0])},{int(a[1])}]"


def _token(t: Optional[int]) -> str:
    return "null" if t is None else f'"{token_hex(t)}"'


def _generic(v: Any) -> str:
    return json.dumps(v, separators=(",", ":"), default=_default)


def _default(v: Any) -> Any:
    if hasattr(v, "_asdict"):
        return v._asdict()
    raise TypeError(f"{type(v).__name__} is not JSON serializable")


_cache: Dict[type, Callable[[Any], str]] = {}


def encoder(cls: type, nested: Sequence[type] = ()) -> Callable[[Any], str]:
    """The JSON encoder of records of class ``cls`` (a NamedTuple).

    ``nested`` names the record classes its fields may hold (``Optional[X]`` or
    ``List[X]``); each gets its own encoder.
    """
    found = _cache.get(cls)
    if found is not None:
        return found
    names = {c.__name__: c for c in nested}
    env: Dict[str, Any] = {"_addr": _addr, "_token": _token, "_generic": _generic}
    fields = list(cls._fields)  # type: ignore[attr-defined]
    parts = []
    for i, field in enumerate(fields):
        v = f"f{i}"
        kind = kind_of(cls, field, names)
        if kind == "int":
            # An f-string formats an int (also an IntEnum/IntFlag member) as its
            # decimal text, without a call.
            expr = f'{{"null" if {v} is None else {v}}}'
        elif kind == "bool":
            expr = f'{{"true" if {v} is True else "false" if {v} is False else "null"}}'
        elif kind == "addr":
            expr = f"{{_addr({v})}}"
        elif kind == "token":
            expr = f"{{_token({v})}}"
        elif kind.startswith("record:"):
            sub = names[kind.split(":", 1)[1]]
            env[f"_e{i}"] = encoder(sub, nested)
            expr = f'{{"null" if {v} is None else _e{i}({v})}}'
        elif kind.startswith("list:"):
            sub = names[kind.split(":", 1)[1]]
            env[f"_e{i}"] = encoder(sub, nested)
            expr = f'[{{",".join(map(_e{i}, {v}))}}]'
        else:
            expr = f"{{_generic({v})}}"
        parts.append(f'"{field}":{expr}')
    body = ",".join(parts)
    args = ", ".join(f"f{i}" for i in range(len(fields)))
    src = (f"def encode(record):\n"
           f"    {args}{',' if len(fields) == 1 else ''} = record\n"
           f"    return f'{{{{{body}}}}}'\n")
    exec(compile(src, f"<json encoder of {cls.__name__}>", "exec"), env)
    fn: Callable[[Any], str] = env["encode"]
    _cache[cls] = fn
    return fn


def dumps_records(records: Sequence[Any], cls: type, nested: Sequence[type] = ()) -> str:
    """A JSON array of ``records`` (all of class ``cls``)."""
    enc = encoder(cls, nested)
    return "[" + ",".join(map(enc, records)) + "]"
