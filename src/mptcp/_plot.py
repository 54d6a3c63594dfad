"""Draw a recording: ``mptcp.plot()`` and ``mptcp plot``.

One panel per metric over time, one colour per subflow (labelled ``local ->
remote``, backup subflows dashed), the path manager's subflow and address events
as labelled vertical markers. Needs matplotlib, the ``plot`` extra::

    pip install "mptcp[plot]"

matplotlib is imported only when a plot is drawn, and only its Agg canvas is used
(no pyplot, no display, no global state), so this works on a headless machine and
from threads.
"""

from __future__ import annotations

import datetime
import math
import os
from typing import (TYPE_CHECKING, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple,
                    Type, Union)

from ._addr import hostport
from ._recording import EVENTS_LOST, Recording, load
from ._records import Address, Sample

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

__all__ = ["plot", "check_metrics", "require_matplotlib", "METRICS", "DEFAULT_METRICS", "INSTALL_HINT"]

INSTALL_HINT = 'pip install "mptcp[plot]"'


class Metric(NamedTuple):
    """How one panel is drawn: its title, the unit of its y axis, and the values."""

    title: str
    unit: str
    series: Callable[[List[Sample]], List[float]]


def _rate(counter: Callable[[Sample], Optional[int]], scale: float
          ) -> Callable[[List[Sample]], List[float]]:
    """Per-second differences of a counter (the first sample has none: NaN)."""
    def series(samples: List[Sample]) -> List[float]:
        out = [math.nan]
        for a, b in zip(samples, samples[1:]):
            x, y, dt = counter(a), counter(b), b.time - a.time
            # A counter going down is a new subflow on the same tuple, not traffic.
            out.append(math.nan if x is None or y is None or dt <= 0 or y < x
                       else (y - x) / dt * scale)
        return out
    return series


def _gauge(value: Callable[[Sample], Optional[int]], scale: float
           ) -> Callable[[List[Sample]], List[float]]:
    def series(samples: List[Sample]) -> List[float]:
        return [math.nan if (v := value(s)) is None else v * scale for s in samples]
    return series


def _traffic(s: Sample) -> Optional[int]:
    if s.bytes_acked is None and s.bytes_received is None:
        return None
    return (s.bytes_acked or 0) + (s.bytes_received or 0)


_MBIT = 8 / 1e6

#: The metrics ``--metrics`` accepts, in the order ``mptcp plot --help`` lists them.
METRICS: Dict[str, Metric] = {
    "throughput": Metric("Throughput (sent and acked + received)", "Mbit/s",
                         _rate(_traffic, _MBIT)),
    "tx": Metric("Sent and acknowledged", "Mbit/s", _rate(lambda s: s.bytes_acked, _MBIT)),
    "rx": Metric("Received", "Mbit/s", _rate(lambda s: s.bytes_received, _MBIT)),
    "rtt": Metric("Smoothed RTT", "ms", _gauge(lambda s: s.rtt_us, 1e-3)),
    "cwnd": Metric("Congestion window", "segments", _gauge(lambda s: s.cwnd, 1)),
    "retrans": Metric("Retransmissions", "segments/s", _rate(lambda s: s.retrans, 1)),
    "delivery_rate": Metric("Delivery rate", "Mbit/s", _gauge(lambda s: s.delivery_rate, _MBIT)),
    "pacing_rate": Metric("Pacing rate", "Mbit/s", _gauge(lambda s: s.pacing_rate, _MBIT)),
}
DEFAULT_METRICS = ("throughput", "rtt", "cwnd")

#: Event types drawn as markers, and their short labels.
_MARKED = {"SUB_ESTABLISHED": "subflow up", "SUB_CLOSED": "subflow closed",
           "SUB_PRIORITY": "priority", "ANNOUNCED": "announced", "REMOVED": "removed"}
#: At most this many subflows are drawn (the busiest); more would be unreadable.
MAX_SUBFLOWS = 8
_DPI = 100

_Key = Tuple[Optional[int], Optional[Address], Optional[Address]]


def require_matplotlib() -> Tuple[Type["Figure"], Type["FigureCanvasAgg"]]:
    """matplotlib's Figure and Agg canvas classes.

    Raises
    ------
    RuntimeError
        matplotlib is not installed; the message names the extra to install.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise RuntimeError(f"plotting needs matplotlib, which is not installed: {INSTALL_HINT}"
                           ) from err
    return Figure, FigureCanvasAgg


def check_metrics(metrics: Sequence[str]) -> Tuple[str, ...]:
    """``metrics`` as a tuple; ValueError naming the unknown ones and the known ones."""
    if isinstance(metrics, str):
        raise TypeError("metrics must be a sequence of names, not a str")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric {', '.join(map(repr, unknown))}: "
                         f"choose from {', '.join(METRICS)}")
    if not metrics:
        raise ValueError("no metric to plot")
    return tuple(metrics)


def _series_by_subflow(samples: Sequence[Sample]) -> Dict[_Key, List[Sample]]:
    by_key: Dict[_Key, List[Sample]] = {}
    for s in samples:
        by_key.setdefault((s.token, s.local, s.remote), []).append(s)
    return by_key


def _busiest(by_key: Dict[_Key, List[Sample]]) -> List[_Key]:
    def moved(key: _Key) -> int:
        rows = by_key[key]
        return max((_traffic(rows[-1]) or 0) - (_traffic(rows[0]) or 0), 0)
    # Busiest first for the cut, then in order of appearance so colours are stable.
    keep = set(sorted(by_key, key=moved, reverse=True)[:MAX_SUBFLOWS])
    return [k for k in by_key if k in keep]


def plot(recording_or_path: Union[Recording, str, "os.PathLike[str]"],
         out: Union[str, "os.PathLike[str]"],
         metrics: Sequence[str] = DEFAULT_METRICS, token: Optional[int] = None, *,
         size: Tuple[int, int] = (1200, 0),
         marks: Sequence[Tuple[float, str]] = ()) -> "Figure":
    """Draw a recording to a PNG or SVG file.

    Parameters
    ----------
    recording_or_path
        A :class:`Recording`, or the path of a samples CSV written by
        ``mptcp record`` or :meth:`Recording.save` (its events file is read too
        when it is there).
    out
        The picture's path; its extension picks the format (``.png``, ``.svg``,
        ``.pdf`` ...).
    metrics
        Panels, top to bottom; keys of :data:`METRICS`: ``throughput`` (Mbit/s from
        the deltas of ``bytes_acked + bytes_received``), ``tx``, ``rx``, ``rtt``
        (ms), ``cwnd`` (segments), ``retrans`` (segments/s), ``delivery_rate``,
        ``pacing_rate``.
    token
        Only this connection; all recorded connections by default (the
        :data:`MAX_SUBFLOWS` busiest subflows are drawn).
    size
        Width and height in pixels; a height of 0 gives each panel 260 pixels.
    marks
        More labelled vertical markers, ``(seconds, text)``: what the experiment
        did (a link taken down ...).

    Returns
    -------
    matplotlib.figure.Figure
        The figure that was saved (its axes hold one line per subflow).

    Raises
    ------
    RuntimeError
        matplotlib is not installed (the message names the extra to install).
    FileNotFoundError
        The samples file does not exist.
    ValueError
        An unknown metric, a bad size or format, a truncated or foreign file, or
        nothing to draw.

    Notes
    -----
    Needs no kernel support: it draws files (any kernel that recorded them).
    """
    chosen = check_metrics(metrics)
    width, height = size
    if width <= 0 or height < 0:
        raise ValueError(f"size must be positive pixels, not {width}x{height}")
    figure_cls, canvas_cls = require_matplotlib()
    rec = recording_or_path if isinstance(recording_or_path, Recording) else load(recording_or_path)
    samples = [s for s in rec.samples if token is None or s.token == token]
    if not samples:
        what = "no samples" if token is None else f"no samples of connection {token:08x}"
        raise ValueError(f"{what} to plot: no MPTCP connection was recorded")
    by_key = _series_by_subflow(samples)
    keys = _busiest(by_key)
    several = len({k[0] for k in keys}) > 1

    height = height or 260 * len(chosen) + 120
    fig = figure_cls(figsize=(width / _DPI, height / _DPI), dpi=_DPI)
    canvas = canvas_cls(fig)
    fmt = os.path.splitext(os.fspath(out))[1].lstrip(".").lower()
    if fmt not in canvas.get_supported_filetypes():
        raise ValueError(f"cannot write {os.fspath(out)!r}: use .png or .svg")
    axes: List["Axes"] = list(fig.subplots(len(chosen), 1, sharex=True, squeeze=False)[:, 0])
    colours = [f"C{i}" for i in range(10)]
    for ax, name in zip(axes, chosen):
        metric = METRICS[name]
        for i, key in enumerate(keys):
            rows = by_key[key]
            backup = any(s.backup for s in rows)
            label = f"{hostport(key[1])} -> {hostport(key[2])}"
            if several:
                label = f"{key[0]:08x} {label}" if key[0] is not None else label
            if backup:
                label += " (backup)"
            ax.plot([s.time for s in rows], metric.series(rows), color=colours[i % 10],
                    linestyle="--" if backup else "-", linewidth=1.6, label=label,
                    gid=f"subflow {label}")
        ax.set_title(metric.title, loc="left", fontsize="medium")
        ax.set_ylabel(metric.unit)
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
    last_marker = _draw_markers(axes, rec, token, marks)
    # Below the panels, where it hides no data.
    columns = min(len(keys), 3)
    legend_rows = -(-len(keys) // columns)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=columns, fontsize="small",
               frameon=False)
    axes[-1].set_xlabel("time (s)")
    # Events read after the last sample are drawn too, not clipped.
    axes[-1].set_xlim(left=0, right=max(samples[-1].time, last_marker, 1e-3))
    title = "MPTCP subflows"
    if rec.start_unix is not None:
        title += datetime.datetime.fromtimestamp(rec.start_unix).strftime(", %Y-%m-%d %H:%M:%S")
    if rec.kernel:
        title += f", Linux {rec.kernel}"
    if len(keys) < len(by_key):
        title += f" ({len(keys)} busiest of {len(by_key)} subflows)"
    fig.suptitle(title)
    fig.tight_layout(rect=(0, min(0.4, (legend_rows * 18 + 12) / height), 1, 1))
    fig.savefig(out, format=fmt)
    return fig


def _draw_markers(axes: Sequence["Axes"], rec: Recording, token: Optional[int],
                  marks: Sequence[Tuple[float, str]]) -> float:
    """Draw the events and marks as vertical lines; the time of the last one (0 for none)."""
    lines: List[Tuple[float, str, str, str]] = []  # time, text, colour, gid
    for e in rec.events:
        name = getattr(e.type, "name", "")
        if name in _MARKED and (token is None or e.token == token):
            where = "" if e.local is None else f" {e.local[0]}"
            if name == "ANNOUNCED" and e.remote is not None:
                where = f" {e.remote[0]}"
            lines.append((e.time, _MARKED[name] + where, "0.35", f"event {name}"))
    lines += [(t, "events lost", "red", f"event {EVENTS_LOST}") for t in rec.events_lost]
    lines += [(t, text, "black", "mark") for t, text in marks]
    for ax in axes:
        for t, text, colour, gid in lines:
            ax.axvline(t, color=colour, linestyle=":", linewidth=1.2, gid=gid, label=f"_{text}")
    top = axes[0]
    for t, text, colour, _ in lines:
        top.annotate(text, xy=(t, 1), xycoords=("data", "axes fraction"),
                     xytext=(2, -2), textcoords="offset points", rotation=90, va="top",
                     fontsize="x-small", color=colour)
    return max((t for t, *_ in lines), default=0.0)
