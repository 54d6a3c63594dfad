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

from typing import Any, Callable, Dict, Sequence, Tuple

try:  # the C function json.encoder uses, without importing the json package
    from _json import encode_basestring_ascii as _q
except ImportError:  # pragma: no cover - an interpreter without the accelerator
    from json.encoder import encode_basestring_ascii as _q

from ._shared import TOKEN_FIELDS

__all__ = ["encoder", "dumps_records", "kind_of"]

_INT = {"int", "Optional[int]"}
_BOOL = {"bool", "Optional[bool]"}
_ADDR = {"Address", "Optional[Address]"}
# IntEnum/IntFlag fields: their int value.
_ENUM = {"Optional[SubflowFlags]", "SubflowFlags", "TCPState", "Optional[TCPState]",
         "Union[EventType, int]"}


def _kind_of_type(ann: Any, nested: Dict[str, type]) -> str:
    """The kind of an evaluated annotation (a class or a typing construct)."""
    import typing

    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is typing.Union and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            return _kind_of_type(typing.Union[tuple(rest)], nested)
        ann = rest[0]
        origin, args = typing.get_origin(ann), typing.get_args(ann)
    if ann is bool:
        return "bool"
    if isinstance(ann, type) and issubclass(ann, int):
        return "int"
    if origin is typing.Union and all(isinstance(a, type) and issubclass(a, int)
                                      and not issubclass(a, bool) for a in args):
        return "int"
    if origin is tuple and args == (str, int):
        return "addr"
    if isinstance(ann, type) and nested.get(ann.__name__) is ann:
        return f"record:{ann.__name__}"
    if origin is list and len(args) == 1 and isinstance(args[0], type) \
            and nested.get(args[0].__name__) is args[0]:
        return f"list:{args[0].__name__}"
    return "json"


def kind_of(cls: type, field: str, nested: Dict[str, type]) -> str:
    """How ``cls.field`` is encoded: token, int, bool, addr, record:NAME, list:NAME or json."""
    if field in TOKEN_FIELDS:
        return "token"
    ann = cls.__annotations__.get(field)
    text = getattr(ann, "__forward_arg__", ann)
    if not isinstance(text, str):
        return _kind_of_type(ann, nested)
    # a postponed annotation (``from __future__ import annotations``): its text
    if text in _INT or text in _ENUM:
        return "int"
    if text in _BOOL:
        return "bool"
    if text in _ADDR:
        return "addr"
    for name in nested:
        if text in (name, f"Optional[{name}]"):
            return f"record:{name}"
        if text in (f"List[{name}]", f"list[{name}]"):
            return f"list:{name}"
    return "json"


def _generic(v: Any) -> str:
    import json

    return json.dumps(v, separators=(",", ":"), default=_default)


def _default(v: Any) -> Any:
    if hasattr(v, "_asdict"):
        return v._asdict()
    raise TypeError(f"{type(v).__name__} is not JSON serializable")


_cache: Dict[Tuple[type, Tuple[type, ...]], Callable[[Any], str]] = {}


def encoder(cls: type, nested: Sequence[type] = ()) -> Callable[[Any], str]:
    """The JSON encoder of records of class ``cls`` (a NamedTuple).

    ``nested`` names the record classes its fields may hold (``Optional[X]`` or
    ``List[X]``); each gets its own encoder.
    """
    key = (cls, tuple(nested))
    found = _cache.get(key)
    if found is not None:
        return found
    names = {c.__name__: c for c in nested}
    env: Dict[str, Any] = {"_q": _q, "_generic": _generic}
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
            # inline, not a call: addresses are a tenth of the fields
            expr = f'{{"null" if {v} is None else "[%s,%d]" % (_q({v}[0]), {v}[1])}}'
        elif kind == "token":
            expr = f"{{\"null\" if {v} is None else '\"%08x\"' % {v}}}"
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
           f"    return f'''{{{{{body}}}}}'''\n")
    exec(compile(src, f"<json encoder of {cls.__name__}>", "exec"), env)
    fn: Callable[[Any], str] = env["encode"]
    _cache[key] = fn
    return fn


def dumps_records(records: Sequence[Any], cls: type, nested: Sequence[type] = ()) -> str:
    """A JSON array of ``records`` (all of class ``cls``)."""
    enc = encoder(cls, nested)
    return "[" + ",".join(map(enc, records)) + "]"
