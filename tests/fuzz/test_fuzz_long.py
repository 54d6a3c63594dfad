"""Long differential fuzz run over every decoder of kernel bytes (opt-in).

Same table as the default run (``tests/unit/test_fuzz_decoders.py``: each decoder
against its pure-Python reference), many more examples. Two engines:

``MPTCP_FUZZ_ENGINE=mutate`` (default)
    hypothesis generates a seed corpus (``MPTCP_FUZZ_SEEDS``, 3000 structured
    examples per decoder, each checked), then a mutation loop derives the rest of
    the ``MPTCP_FUZZ_EXAMPLES`` from it: byte flips, length/type fields set to
    boundary values, truncation, insertion, deletion, splicing of two examples;
    mutants are fed back into the corpus so mutations stack. About 2,000-100,000
    examples per second per decoder, so a million per decoder is a coffee break.
``MPTCP_FUZZ_ENGINE=hypothesis``
    hypothesis alone for all examples (60-800 per second: for overnight runs).

A failure prints the example and writes it to ``MPTCP_FUZZ_FAILURES`` (default
``fuzz-failures.txt``); with ``MPTCP_FUZZ_REPORT=path`` each decoder appends one
JSON line with its count and rate. ``MPTCP_FUZZ_SEED`` makes a run repeatable.
"""

from __future__ import annotations

import json
import os
import random
import time
from typing import Any, List

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from ..unit import test_fuzz_decoders as F

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("MPTCP_FUZZ_EXAMPLES", "0") or 0)
SEEDS = int(os.environ.get("MPTCP_FUZZ_SEEDS", "3000"))
ENGINE = os.environ.get("MPTCP_FUZZ_ENGINE", "mutate")
CORPUS_MAX = 8000

_INTERESTING16 = [0, 1, 2, 3, 4, 5, 7, 8, 15, 16, 19, 20, 21, 24, 40, 71, 72, 0x7F, 0x80,
                  0xFF, 0x100, 0x3FFF, 0x4000, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF]
_INTERESTING32 = [0, 1, 16, 20, 40, 72, 96, 256, 264, 280, 0x7FFFFFFF, 0x80000000,
                  0xFFFFFFFF, 0xFFFFFFFE]


def mutate_bytes(data: bytes, rng: random.Random, corpus: List[Any]) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 3, 4))):
        op = rng.randrange(9)
        n = len(b)
        if op == 0 and n:  # flip one byte
            b[rng.randrange(n)] = rng.randrange(256)
        elif op == 1 and n:  # flip one bit
            i = rng.randrange(n)
            b[i] ^= 1 << rng.randrange(8)
        elif op == 2 and n >= 2:  # a 16-bit field (attribute length/type) at 2-aligned offset
            i = rng.randrange(0, n - 1) & ~1
            v = rng.choice(_INTERESTING16 + [n - i, n - i + 1, n - i - 1, rng.randrange(65536)])
            b[i:i + 2] = (v & 0xFFFF).to_bytes(2, "little")
        elif op == 3 and n >= 4:  # a 32-bit field (nlmsg_len, sizes, counts) at 4-aligned offset
            i = rng.randrange(0, n - 3) & ~3
            v = rng.choice(_INTERESTING32 + [n - i, n - i + 4, rng.randrange(2**32)])
            b[i:i + 4] = (v & 0xFFFFFFFF).to_bytes(4, "little")
        elif op == 4 and n:  # truncate
            del b[rng.randrange(n + 1):]
        elif op == 5:  # insert random bytes
            i = rng.randrange(n + 1)
            b[i:i] = os.urandom(rng.choice((1, 2, 4, 8, rng.randrange(1, 40))))
        elif op == 6 and n:  # delete a range
            i = rng.randrange(n)
            del b[i:i + rng.choice((1, 2, 4, rng.randrange(1, 64)))]
        elif op == 7:  # splice with the same component of another example
            other = _bytes_of(rng.choice(corpus), rng)
            if other:
                i = rng.randrange(len(b) + 1)
                j = rng.randrange(len(other) + 1)
                b = b[:i] + bytearray(other[j:])
        elif op == 8 and n:  # duplicate a range (repeated attributes/messages)
            i = rng.randrange(n)
            j = min(n, i + rng.randrange(1, 64))
            b[j:j] = b[i:j]
    return bytes(b)


def _bytes_of(ex: Any, rng: random.Random) -> bytes:
    if isinstance(ex, bytes):
        return ex
    parts = [e for e in ex if isinstance(e, bytes)]
    return rng.choice(parts) if parts else b""


def mutate(ex: Any, rng: random.Random, corpus: List[Any]) -> Any:
    if isinstance(ex, bytes):
        return mutate_bytes(ex, rng, corpus)
    out = list(ex)
    idx = [i for i, e in enumerate(out) if isinstance(e, bytes)]
    for i in idx:
        if rng.random() < 0.6 or i == idx[-1]:
            out[i] = mutate_bytes(out[i], rng, corpus)
    for i, e in enumerate(out):
        if isinstance(e, bool) and rng.random() < 0.2:
            out[i] = not e
    return tuple(out)


def _fail(name: str, ex: Any, err: BaseException) -> None:
    path = os.environ.get("MPTCP_FUZZ_FAILURES", "fuzz-failures.txt")
    with open(path, "a") as f:
        f.write(f"{name}: {type(err).__name__}: {err}\n{ex!r}\n\n")
    raise AssertionError(f"{name}: decoder and reference disagree on {ex!r} "
                         f"(saved to {path})") from err


def _report(name: str, engine: str, count: int, seconds: float) -> None:
    line = {"decoder": name, "engine": engine, "examples": count,
            "seconds": round(seconds, 1), "per_second": round(count / seconds) if seconds else None}
    print(json.dumps(line))
    path = os.environ.get("MPTCP_FUZZ_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(line) + "\n")


@pytest.mark.parametrize("name", sorted(F.CASES))
def test_fuzz_decoder(name: str) -> None:
    assert EXAMPLES > 0
    start = time.monotonic()
    strategy, check = F.CASES[name]
    if ENGINE == "hypothesis":
        F.run_case(name, EXAMPLES, phases=[Phase.generate, Phase.shrink])
        _report(name, "hypothesis", EXAMPLES, time.monotonic() - start)
        return
    assert ENGINE == "mutate", f"MPTCP_FUZZ_ENGINE={ENGINE!r}: 'mutate' or 'hypothesis'"
    corpus: List[Any] = []

    def seed(ex: Any) -> None:
        check(ex)  # every seed is an example too (hypothesis shrinks a failure)
        corpus.append(ex)

    n_seeds = min(SEEDS, EXAMPLES)
    settings(max_examples=n_seeds, deadline=None, database=None,
             phases=[Phase.generate, Phase.shrink],
             suppress_health_check=list(HealthCheck))(given(strategy)(seed))()
    count = len(corpus)
    rng = random.Random(int(os.environ.get("MPTCP_FUZZ_SEED", "0")) or None)
    while count < EXAMPLES:
        ex = mutate(rng.choice(corpus), rng, corpus)
        try:
            check(ex)
        except BaseException as err:  # noqa: BLE001 - report any disagreement or crash
            _fail(name, ex, err)
        count += 1
        if rng.random() < 0.125:
            if len(corpus) < CORPUS_MAX:
                corpus.append(ex)
            else:
                corpus[rng.randrange(CORPUS_MAX)] = ex
    _report(name, "mutate", count, time.monotonic() - start)
