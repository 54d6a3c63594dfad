"""A Prometheus exporter for the MPTCP connections of a network namespace.

``mptcp exporter --port 9459`` serves ``/metrics``. Every scrape takes one
:func:`mptcp.connections` snapshot (a custom collector: no background thread, no
cache), so the numbers are as fresh as the scrape. Needs the ``exporter`` extra::

    pip install 'mptcp[exporter]'

Metrics (labels ``token`` as 8 hex digits like ``ss`` prints it, ``local`` and
``remote`` as ``host:port``, IPv6 hosts in brackets):

=========================================  =======  ==============================
name                                       type     from
=========================================  =======  ==============================
``mptcp_connections``                      gauge    number of connections
``mptcp_connection_subflows``              gauge    subflows listed for it
``mptcp_connection_fallback``              gauge    1 if it fell back to TCP (``ss``:
                                                    ``fallback``), else 0
``mptcp_connection_bytes_sent_total``      counter  ``MPTCPInfo.bytes_sent``
``mptcp_connection_bytes_received_total``  counter  ``MPTCPInfo.bytes_received``
``mptcp_connection_bytes_acked_total``     counter  ``MPTCPInfo.bytes_acked``
``mptcp_connection_bytes_retrans_total``   counter  ``MPTCPInfo.bytes_retrans``
``mptcp_connection_retransmits_total``     counter  ``MPTCPInfo.retransmits``
``mptcp_subflow_bytes_sent_total``         counter  ``tcp_info`` bytes_sent
``mptcp_subflow_bytes_received_total``     counter  ``tcp_info`` bytes_received
``mptcp_subflow_bytes_acked_total``        counter  ``tcp_info`` bytes_acked
``mptcp_subflow_bytes_retrans_total``      counter  ``tcp_info`` bytes_retrans
``mptcp_subflow_retransmits_total``        counter  ``tcp_info`` total_retrans
``mptcp_subflow_rtt_seconds``              gauge    smoothed RTT
``mptcp_subflow_cwnd``                     gauge    congestion window (segments)
``mptcp_subflow_backup``                   gauge    1 if this side's backup flag
=========================================  =======  ==============================

Counters the running kernel does not report (``None``) are left out.
``prometheus_client`` is imported only here, and only when the exporter runs.
"""

from __future__ import annotations

import socket
import sys
from typing import Any, Callable, Iterator, List, Optional, TextIO, Tuple

from ._addr import hostport, token_hex

__all__ = ["MPTCPCollector", "serve", "require_prometheus_client", "INSTALL_HINT"]

INSTALL_HINT = "pip install 'mptcp[exporter]'"

_CONN_LABELS = ["token", "local", "remote"]
_SUB_LABELS = ["token", "local", "remote"]

# (metric suffix, MPTCPInfo field, help)
_CONN_COUNTERS: List[Tuple[str, str, str]] = [
    ("bytes_sent", "bytes_sent", "Bytes sent at the MPTCP level, retransmissions included"),
    ("bytes_received", "bytes_received", "Bytes received at the MPTCP level"),
    ("bytes_acked", "bytes_acked", "Bytes acknowledged at the MPTCP level"),
    ("bytes_retrans", "bytes_retrans", "Bytes retransmitted at the MPTCP level"),
    ("retransmits", "retransmits", "MPTCP-level retransmissions"),
]
# (metric suffix, SubflowInfo field, help)
_SUB_COUNTERS: List[Tuple[str, str, str]] = [
    ("bytes_sent", "bytes_sent", "Bytes the subflow sent (tcp_info)"),
    ("bytes_received", "bytes_received", "Bytes the subflow received (tcp_info)"),
    ("bytes_acked", "bytes_acked", "Bytes the subflow sent that were acknowledged (tcp_info)"),
    ("bytes_retrans", "bytes_retrans", "Bytes the subflow retransmitted (tcp_info)"),
    ("retransmits", "total_retrans", "Segments the subflow retransmitted (tcp_info)"),
]


def require_prometheus_client() -> Any:
    """Import and return ``prometheus_client``.

    Raises
    ------
    RuntimeError
        It is not installed; the message says how to install it.
    """
    try:
        import prometheus_client
    except ImportError as err:
        raise RuntimeError(
            f"the exporter needs prometheus_client, which is not installed: {INSTALL_HINT}"
        ) from err
    return prometheus_client


def _token(token: Optional[int]) -> str:
    return "" if token is None else token_hex(token)


class MPTCPCollector:
    """A ``prometheus_client`` collector that reads :func:`mptcp.connections` per scrape.

    Parameters
    ----------
    source
        Returns the connections; :func:`mptcp.connections` (of the namespace of the
        thread that scrapes) by default.
    """

    def __init__(self, source: Optional[Callable[[], List[Any]]] = None) -> None:
        if source is None:
            from . import connections

            source = connections
        self._source = source

    def describe(self) -> List[Any]:
        # Registering must not take a snapshot; the names are fixed anyway.
        return []

    def collect(self) -> Iterator[Any]:
        """Yield the metric families of one snapshot (called by the registry)."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        conns = self._source()
        n_conns = GaugeMetricFamily("mptcp_connections", "MPTCP connections in this namespace")
        n_conns.add_metric([], len(conns))
        n_subs = GaugeMetricFamily("mptcp_connection_subflows",
                                   "Subflows of the connection", labels=_CONN_LABELS)
        fallback = GaugeMetricFamily("mptcp_connection_fallback",
                                     "1 if the connection fell back to plain TCP, else 0",
                                     labels=_CONN_LABELS)
        conn_ctr = {name: CounterMetricFamily(f"mptcp_connection_{name}", text, labels=_CONN_LABELS)
                    for name, _, text in _CONN_COUNTERS}
        sub_ctr = {name: CounterMetricFamily(f"mptcp_subflow_{name}", text, labels=_SUB_LABELS)
                   for name, _, text in _SUB_COUNTERS}
        rtt = GaugeMetricFamily("mptcp_subflow_rtt_seconds", "Smoothed round-trip time of the subflow",
                                labels=_SUB_LABELS)
        cwnd = GaugeMetricFamily("mptcp_subflow_cwnd", "Congestion window of the subflow, in segments",
                                 labels=_SUB_LABELS)
        backup = GaugeMetricFamily("mptcp_subflow_backup",
                                   "1 if this side marked the subflow backup (BKUP_LOC)",
                                   labels=_SUB_LABELS)
        for c in conns:
            labels = [_token(c.token), hostport(c.local), hostport(c.remote)]
            n_subs.add_metric(labels, len(c.subflows))
            if c.info is not None and c.info.fallback is not None:
                fallback.add_metric(labels, 1 if c.info.fallback else 0)
            if c.info is not None:
                for name, field, _ in _CONN_COUNTERS:
                    value = getattr(c.info, field)
                    if value is not None:
                        conn_ctr[name].add_metric(labels, value)
            for s in c.subflows:
                sl = [_token(c.token), hostport(s.local), hostport(s.remote)]
                for name, field, _ in _SUB_COUNTERS:
                    value = getattr(s, field)
                    if value is not None:
                        sub_ctr[name].add_metric(sl, value)
                if s.rtt_us is not None:
                    rtt.add_metric(sl, s.rtt_us / 1e6)
                if s.snd_cwnd is not None:
                    cwnd.add_metric(sl, s.snd_cwnd)
                if s.backup is not None:
                    backup.add_metric(sl, 1 if s.backup else 0)
        yield n_conns
        yield n_subs
        yield fallback
        yield from conn_ctr.values()
        yield from sub_ctr.values()
        yield rtt
        yield cwnd
        yield backup


def serve(port: int, address: str = "127.0.0.1", *, out: Optional[TextIO] = None) -> None:
    """Serve ``/metrics`` on ``address:port`` in the calling thread until interrupted.

    One line ``serving http://HOST:PORT/metrics`` goes to ``out`` (stdout) once
    the socket listens (``port=0`` picks a free port, which the line shows).
    Requests are handled one at a time in this thread; each scrape runs the
    collector in the namespace of this thread.

    Raises
    ------
    RuntimeError
        ``prometheus_client`` is not installed.
    OSError
        The address cannot be bound.
    """
    prom = require_prometheus_client()
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    registry = prom.CollectorRegistry(auto_describe=False)
    registry.register(MPTCPCollector())
    app = prom.make_wsgi_app(registry)

    class _Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    family = socket.AF_INET6 if ":" in address else socket.AF_INET

    class _Server(WSGIServer):
        address_family = family
        allow_reuse_address = True

    httpd = make_server(address, port, app, server_class=_Server, handler_class=_Quiet)
    try:
        bound = httpd.server_address
        out = sys.stdout if out is None else out
        out.write(f"serving http://{hostport((str(bound[0]), int(bound[1])))}/metrics\n")
        out.flush()
        httpd.serve_forever()
    finally:
        httpd.server_close()
