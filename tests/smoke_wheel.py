"""Smoke test of an installed wheel (cibuildwheel's test-command; no kernel needed).

Imports the installed package (never a source tree), checks the version against the
distribution's metadata, and runs the compiled decoders on canned kernel bytes. The
wheel may run under emulation (aarch64 on QEMU) or in a container without MPTCP, so
nothing here makes a syscall on an MPTCP socket.

    python tests/smoke_wheel.py
"""

from __future__ import annotations

import importlib.metadata
import pickle
import socket
import struct
import sys
from pathlib import Path


def _sockaddr(host: str, port: int) -> bytes:
    """A 128-byte sockaddr_storage holding host:port."""
    if ":" in host:
        raw = struct.pack("<H", socket.AF_INET6) + struct.pack(">H", port) + b"\0" * 4
        raw += socket.inet_pton(socket.AF_INET6, host) + b"\0" * 4
    else:
        raw = struct.pack("<H", socket.AF_INET) + struct.pack(">H", port)
        raw += socket.inet_pton(socket.AF_INET, host) + b"\0" * 8
    return raw.ljust(128, b"\0")


def main() -> int:
    here = Path(__file__).resolve().parent.parent
    import mptcp
    from mptcp import _mptcp as core

    where = Path(mptcp.__file__).resolve()
    if here in where.parents:
        print(f"smoke: imported mptcp from the source tree ({where}), not the wheel", file=sys.stderr)
        return 1
    dist_version = importlib.metadata.version("mptcp")
    assert mptcp.__version__ == dist_version, (mptcp.__version__, dist_version)
    assert Path(core.__file__).parent == where.parent, core.__file__
    assert (where.parent / "py.typed").exists() and (where.parent / "_mptcp.pyi").exists()

    # struct mptcp_info as Linux 6.10+ writes it (96 bytes).
    info = bytearray(96)
    info[0] = 1                                          # subflows
    struct.pack_into("<II", info, 8, 1, 0xDEADBEEF)      # flags (fallback), token
    struct.pack_into("<Q", info, 56, 123456)             # bytes_sent
    struct.pack_into("<I", info, 92, 300)                # last_ack_recv
    rec = core.decode_mptcp_info(bytes(info))
    assert isinstance(rec, mptcp.MPTCPInfo), type(rec)
    assert (rec.subflows, rec.token, rec.bytes_sent, rec.last_ack_recv) == (1, 0xDEADBEEF, 123456, 300)
    assert rec.fallback is True
    assert pickle.loads(pickle.dumps(rec)) == rec
    old = core.decode_mptcp_info(bytes(info[:44]))       # a 5.16 kernel: no byte counters
    assert old.token == 0xDEADBEEF and old.bytes_sent is None

    # MPTCP_FULL_INFO: header + mptcp_info, then one subflow_info and one tcp_info.
    ti_user, sf_user = core.SIZEOF_TCP_INFO, core.SIZEOF_SUBFLOW_INFO
    header = struct.pack("<6I", ti_user, ti_user, sf_user, sf_user, 1, 1)
    header += struct.pack("<QQ", 0, 0) + bytes(info)
    sfinfo = struct.pack("<II", 3, 0) + _sockaddr("fd00:1:2::2", 40000) + _sockaddr("fd00:1:1::1", 80)
    tcpinfo = bytearray(ti_user)
    tcpinfo[0] = 1                                       # TCP_ESTABLISHED
    struct.pack_into("<I", tcpinfo, 68, 2500)            # rtt
    struct.pack_into("<I", tcpinfo, 80, 10)              # snd_cwnd
    _, subs = core.decode_full_info(header, sfinfo, bytes(tcpinfo))
    assert len(subs) == 1 and isinstance(subs[0], mptcp.SubflowInfo)
    sf = subs[0]
    assert (sf.id, sf.local, sf.remote) == (3, ("fd00:1:2::2", 40000), ("fd00:1:1::1", 80)), sf
    assert (sf.state, sf.rtt_us, sf.snd_cwnd) == (1, 2500, 10), sf

    # MPTCP_SUBFLOW_ADDRS (5.16) and the draft kernel's GET_SUB_IDS / GET_SUB_TUPLE.
    addrs = struct.pack("<4I", 16, 1, 256, 256) + _sockaddr("10.0.1.2", 1234) + _sockaddr("10.0.1.1", 80)
    assert core.decode_subflow_data(addrs, "addrs") == (1, [(("10.0.1.2", 1234), ("10.0.1.1", 80))])
    assert core.decode_draft_sub_ids(bytes([2, 0, 1, 0x02, 4, 0x06]), False) == [1, 4]
    sin = lambda host, port: (struct.pack("<H", socket.AF_INET) + struct.pack(">H", port)  # noqa: E731
                              + socket.inet_aton(host) + b"\0" * 8)
    tup = bytes([5]) + sin("10.0.2.2", 5000) + sin("10.0.1.1", 80)
    assert core.decode_draft_sub_tuple(tup) == (("10.0.2.2", 5000), ("10.0.1.1", 80))

    # Every public name the package exports resolves (the lazy ones load here).
    missing = [name for name in mptcp.__all__ if not hasattr(mptcp, name)]
    assert not missing, missing
    print(f"smoke: mptcp {mptcp.__version__} from {where.parent} on Python "
          f"{sys.version.split()[0]} ({sys.platform}): decoders ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
