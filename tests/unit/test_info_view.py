"""Poller.info (the core's InfoView) has every field of MPTCPInfo, which mptcp.info()
returns: the two views of one struct mptcp_info must not drift apart."""

from __future__ import annotations

import mptcp
from mptcp import _mptcp as core


def test_info_view_has_every_mptcp_info_field() -> None:
    missing = [f for f in mptcp.MPTCPInfo._fields if not hasattr(core.InfoView, f)]
    assert missing == []
