"""``mptcp endpoint`` and ``mptcp limits``: the in-kernel path manager's endpoints and
limits, like ``ip mptcp endpoint`` and ``ip mptcp limits``.

Both grammars work, mixed as you like: ``ip``'s keywords (``add ADDR id 9 dev c2
subflow backup``, ``delete id 0 ADDR``, ``limits set subflows 4``) and options
(``--id 9``, ``--dev c2``, ``--subflows 4``), before or after the address. Every
word is checked (the library's own argument checks) before anything is sent; a bad
one is a usage error: exit status 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import errno
import json
from collections.abc import Callable, Sequence
from typing import Any, Optional

from .. import _args
from ._shared import jsonable

__all__ = ["add_parsers", "run_endpoint", "run_limits", "endpoint_line"]

ADD_FLAGS = ("signal", "subflow", "backup", "fullmesh", "laminar")
CHANGE_FLAGS = ("backup", "nobackup", "fullmesh", "nofullmesh")
# The order and names ``ip mptcp endpoint show`` prints flags in (iproute2), and the
# bits iproute2 6.1 does not know by name but this library does.
_SHOWN_FLAGS = (("signal", 1), ("subflow", 2), ("backup", 4), ("fullmesh", 8),
                ("implicit", 16), ("laminar", 32))


# ---------------------------------------------------------------- argument words


def _checked(check: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type from a library argument check (TypeError/ValueError -> usage)."""
    def convert(text: str) -> Any:
        try:
            return check(text)
        except (TypeError, ValueError) as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return convert


def _integer(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None


def id_type(lo: int) -> Callable[[str], Any]:
    """An endpoint id from ``lo`` to 255, as the library (and the kernel) take it."""
    return _checked(lambda t: _args.address_id("id", _integer(t), lo=lo))


port_type = _checked(lambda t: _args.port("port", _integer(t)))
addr_type = _checked(lambda t: _args.host("address", t).text)
limit_type = _checked(lambda t: _args.u32("limit", _integer(t)))


class _Grammar:
    """``ip``-style words: ``KEYWORD VALUE`` (also ``--keyword VALUE`` and
    ``--keyword=VALUE``), bare flag words, and positional values in order."""

    def __init__(self, keywords: dict[str, Callable[[str], Any]], flags: Sequence[str] = (),
                 positional: Sequence[tuple[str, Callable[[str], Any]]] = ()) -> None:
        self.keywords = keywords
        self.flags = flags
        self.positional = positional

    def parse(self, parser: argparse.ArgumentParser, words: list[str],
              given: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        values = {k: v for k, v in given.items() if v is not None}
        flags: list[str] = []
        slots = list(self.positional)
        i = 0
        while i < len(words):
            word = words[i]
            key, value = word, None
            if word.startswith("--"):
                key, _, rest = word[2:].partition("=")
                key = key.replace("-", "_")
                value = rest if "=" in word else None
            if key in self.keywords:
                if value is None:
                    if i + 1 >= len(words):
                        parser.error(f"{key} needs a value")
                    i += 1
                    value = words[i]
                if key in values:
                    parser.error(f"{key} given twice")
                values[key] = self._convert(parser, key, self.keywords[key], value)
            elif word in self.flags:
                if word in flags:
                    parser.error(f"{word} given twice")
                flags.append(word)
            elif word in ("-h", "--help"):
                parser.print_help()
                parser.exit(0)
            elif word.startswith("-") and not word.lstrip("-").isdigit():
                parser.error(f"unrecognized option {word}")
            else:
                while slots and slots[0][0] != "*" and slots[0][0] in values:
                    slots.pop(0)
                if not slots:
                    parser.error(f"unexpected word {word!r}")
                name, convert = slots.pop(0)
                got = self._convert(parser, name, convert, word)
                if name == "*":  # the converter tells which value the word is
                    name, got = got
                    if name in values:
                        parser.error(f"{name} given twice")
                values[name] = got
            i += 1
        return values, flags

    @staticmethod
    def _convert(parser: argparse.ArgumentParser, name: str, convert: Callable[[str], Any],
                 text: str) -> Any:
        try:
            return convert(text)
        except argparse.ArgumentTypeError as err:
            # the library's checks name the argument themselves ("id 300 is outside ...")
            said = str(err)
            parser.error(said if name == "*" or said.startswith(name) else f"{name}: {said}")


def _words(sub: argparse.ArgumentParser, help: str, **options: Any) -> None:
    """The options argparse parses before the first word; every word after that is
    parsed by the action's grammar (ip's order and the options, mixed)."""
    for name, kw in options.items():
        sub.add_argument(f"--{name.replace('_', '-')}", dest=name, **kw)
    sub.add_argument("words", nargs=argparse.REMAINDER, help=help)


def add_parsers(sub: Any) -> None:
    ep = sub.add_parser(
        "endpoint", help="in-kernel path manager endpoints, like 'ip mptcp endpoint'")
    ep_sub = ep.add_subparsers(dest="action", required=True)
    show = ep_sub.add_parser("show", help="list the endpoints (or one: show id ID)")
    show.add_argument("--json", action="store_true")
    _words(show, "[id ID]", id={"type": id_type(0)})
    add = ep_sub.add_parser("add", help="add an endpoint")
    _words(add, f"ADDRESS [id ID] [dev NAME] [port NR] [{' | '.join(ADD_FLAGS)}]...",
           id={"type": id_type(0)}, dev={}, port={"type": port_type})
    dele = ep_sub.add_parser("del", aliases=["delete"],
                             help="remove an endpoint: del ID, del id ID [ADDRESS]")
    _words(dele, "[id] ID [ADDRESS]  (id 0 needs ADDRESS: each connection's initial address)",
           id={"type": id_type(0)})
    change = ep_sub.add_parser("change", help="change an endpoint's flags")
    _words(change, f"[id] ID [{' | '.join(CHANGE_FLAGS)}]...", id={"type": id_type(1)})
    ep_sub.add_parser("flush", help="remove every endpoint")
    ep.set_defaults(func=run_endpoint, json=False, words=[])
    for p in (show, add, dele, change):
        p.set_defaults(parser=p)

    lim = sub.add_parser("limits", help="path manager limits, like 'ip mptcp limits'")
    lim_sub = lim.add_subparsers(dest="action", required=True)
    lshow = lim_sub.add_parser("show")
    lshow.add_argument("--json", action="store_true")
    lset = lim_sub.add_parser("set", help="set subflows and/or add_addr_accepted")
    _words(lset, "[subflows NR] [add_addr_accepted NR]", subflows={"type": limit_type},
           add_addr_accepted={"type": limit_type})
    lset.set_defaults(parser=lset)
    lim.set_defaults(func=run_limits, json=False, words=[])


_SHOW = _Grammar({"id": id_type(0)}, flags=("--json",), positional=(("id", id_type(0)),))
_ADD = _Grammar({"id": id_type(0), "dev": str, "port": port_type}, flags=ADD_FLAGS,
                positional=(("addr", addr_type),))


def _del_word(text: str) -> tuple[str, Any]:
    """A bare word of ``del``: the id (a number) or the address."""
    if text.lstrip("-").isdigit():
        return ("id", id_type(0)(text))
    return ("addr", addr_type(text))


_DEL = _Grammar({"id": id_type(0)}, positional=(("*", _del_word), ("*", _del_word)))
_CHANGE = _Grammar({"id": id_type(1)}, flags=CHANGE_FLAGS, positional=(("id", id_type(1)),))
_LIMITS = _Grammar({"subflows": limit_type, "add_addr_accepted": limit_type})


def _given(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    return {n: getattr(args, n, None) for n in names}


def parse_endpoint(args: argparse.Namespace) -> dict[str, Any]:
    """The checked arguments of one ``mptcp endpoint`` action (usage errors exit 2)."""
    parser: Optional[argparse.ArgumentParser] = getattr(args, "parser", None)
    if args.action == "flush" or parser is None:
        return {}
    words = list(args.words)
    if args.action == "show":
        values, flags = _SHOW.parse(parser, words, _given(args, "id"))
        values["json"] = args.json or "--json" in flags
        return values
    if args.action == "add":
        values, flags = _ADD.parse(parser, words, _given(args, "id", "dev", "port"))
        if "addr" not in values:
            parser.error("the address to add is missing")
        values["flags"] = flags
        return values
    if args.action in ("del", "delete"):
        values, _ = _DEL.parse(parser, words, _given(args, "id"))
        if "id" not in values:
            parser.error("the id of the endpoint to remove is missing")
        if values["id"] == 0 and "addr" not in values:
            parser.error("id 0 is each connection's initial address: give the address too "
                         "(del id 0 ADDRESS)")
        return values
    values, flags = _CHANGE.parse(parser, words, _given(args, "id"))
    if "id" not in values:
        parser.error("the id of the endpoint to change is missing")
    for on, off in (("backup", "nobackup"), ("fullmesh", "nofullmesh")):
        if on in flags and off in flags:
            parser.error(f"{on} and {off} contradict each other")
    if not flags:
        parser.error(f"nothing to change: give {' | '.join(CHANGE_FLAGS)}")
    values["flags"] = flags
    return values


def endpoint_line(e: Any) -> str:
    """One endpoint as ``ip mptcp endpoint show`` prints it: address, port, id, the
    flags by name, device."""
    parts = [e.addr]
    if e.port:
        parts += ["port", str(e.port)]
    parts += ["id", str(e.id)]
    flags = int(e.flags)
    for name, bit in _SHOWN_FLAGS:
        if flags & bit:
            parts.append(name)
            flags &= ~bit
    if flags:
        parts += ["rawflags", f"{flags:02x}"]
    if e.if_index:
        parts += ["dev", e.dev or f"if{e.if_index}"]
    return " ".join(parts)


def run_endpoint(args: argparse.Namespace) -> int:
    values = parse_endpoint(args)  # before anything is sent
    from .. import PathManager, PathManagerError

    with PathManager() as pm:
        if args.action == "show":
            if "id" in values:
                one = pm.get_endpoint(values["id"])
                if one is None:
                    raise PathManagerError(errno.ENOENT, f"no endpoint with id {values['id']}")
                eps = [one]
            else:
                eps = pm.endpoints()
            if values["json"]:
                print(json.dumps([jsonable(e) for e in eps]))
            else:
                for e in eps:
                    print(endpoint_line(e))
        elif args.action == "add":
            flags = values["flags"]
            pm.add_endpoint(values["addr"], id=values.get("id"), dev=values.get("dev"),
                            port=values.get("port"),
                            **{name: name in flags for name in ADD_FLAGS})
        elif args.action in ("del", "delete"):
            pm.remove_endpoint(values["id"], values.get("addr"))
        elif args.action == "change":
            flags = values["flags"]
            pm.set_endpoint_flags(
                values["id"],
                backup=True if "backup" in flags else False if "nobackup" in flags else None,
                fullmesh=True if "fullmesh" in flags else False if "nofullmesh" in flags else None,
            )
        elif args.action == "flush":
            pm.flush_endpoints()
    return 0


def run_limits(args: argparse.Namespace) -> int:
    values: dict[str, Any] = {}
    if args.action == "set":
        values, _ = _LIMITS.parse(args.parser, list(args.words),
                                  _given(args, "subflows", "add_addr_accepted"))
        if not values:
            args.parser.error("nothing to set: give subflows NR and/or add_addr_accepted NR")
    from .. import PathManager

    with PathManager() as pm:
        if args.action == "set":
            pm.set_limits(subflows=values.get("subflows"),
                          add_addr_accepted=values.get("add_addr_accepted"))
        else:
            limits = pm.limits()
            if args.json:
                print(json.dumps(jsonable(limits)))
            else:
                print(f"add_addr_accepted {limits.add_addr_accepted} subflows {limits.subflows}")
    return 0
