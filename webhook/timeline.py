"""A Deployment's story as a picture: revisions' active spans, alerts and rollbacks, in SVG.

Pure: spans and marks in, SVG text out (escaped; no scripts, no external references), so the
console can inline it under its `default-src 'none'` policy and tests can read it as XML.
One lane per ReplicaSet, newest revision on top; time runs left to right up to `now`.
Hovering any shape shows its <title> (the browser's own tooltip, no JavaScript).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

WIDTH = 760
LABEL_WIDTH = 150
LANE_HEIGHT = 30
TOP = 10
AXIS_HEIGHT = 44
RIGHT_PAD = 12

COLOURS = {
    "span": "#3e63dd",
    "current": "#30a46c",
    "alert": "#e5484d",
    "skipped": "#f5a524",
    "rollback": "#1d1d1f",
    "bad": "#cd2b31",
}


@dataclass(frozen=True)
class Lane:
    """One ReplicaSet: `label` on the left (revision and image)."""

    key: str
    label: str


@dataclass(frozen=True)
class Span:
    """`lane` ran the Deployment from `start` to `end` (None: still current)."""

    lane: str
    start: datetime
    end: datetime | None


@dataclass(frozen=True)
class Mark:
    """A moment on a lane: kind is alert, skipped, bad or rollback (with `to_lane`)."""

    kind: str
    lane: str
    at: datetime
    title: str
    to_lane: str | None = None


def spans_from_activations(activations: Sequence[tuple[datetime, str]]) -> list[Span]:
    """Each activation (when a ReplicaSet became current) lasts until the next one."""
    ordered = sorted(activations)
    spans: list[Span] = []
    for i, (start, lane) in enumerate(ordered):
        end = ordered[i + 1][0] if i + 1 < len(ordered) else None
        if spans and spans[-1].lane == lane:  # activated again while current: one span
            spans[-1] = Span(lane, spans[-1].start, end)
        else:
            spans.append(Span(lane, start, end))
    return spans


def _ticks(start: datetime, end: datetime, *, most: int) -> list[datetime]:
    total = (end - start).total_seconds()
    steps = [60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400]
    step = next((s for s in steps if total / s <= most), steps[-1])
    first = datetime.fromtimestamp((start.timestamp() // step + 1) * step, tz=start.tzinfo)
    ticks = []
    moment = first
    while moment < end:
        ticks.append(moment)
        moment += timedelta(seconds=step)
    return ticks


def render_svg(
    *,
    lanes: Sequence[Lane],
    spans: Sequence[Span],
    marks: Sequence[Mark],
    now: datetime,
    since: datetime | None = None,
    width: int = WIDTH,
    label_width: int = LABEL_WIDTH,
    element_id: str = "timeline",
) -> str:
    """The timeline as an inline <svg> element, from `since` (default: the first moment known)
    to `now`; spans that began earlier start at the left edge, earlier marks are left out."""
    if since is None:
        moments = [s.start for s in spans] + [m.at for m in marks]
        since = min(moments, default=now - timedelta(hours=1))
    since = min(since, now - timedelta(minutes=5))
    padding = (now - since) * 0.03
    start, end = since - padding, now + padding
    spans = [s for s in spans if (s.end or now) >= start]
    marks = [m for m in marks if m.at >= start]
    seconds = max((end - start).total_seconds(), 1.0)
    plot = width - label_width - RIGHT_PAD
    row = {lane.key: i for i, lane in enumerate(lanes)}
    height = TOP + LANE_HEIGHT * max(len(lanes), 1) + AXIS_HEIGHT

    def x(moment: datetime) -> float:
        return label_width + plot * (moment - start).total_seconds() / seconds

    def y(lane: str) -> float:
        return TOP + LANE_HEIGHT * row.get(lane, 0) + LANE_HEIGHT / 2

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" id="{element_id}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="timeline of revisions, alerts and rollbacks">',
        "<title>Revisions' active spans, alerts and rollbacks</title>",
    ]
    for lane in lanes:
        ly = y(lane.key)
        out.append(
            f'<line x1="{label_width}" y1="{ly:.1f}" x2="{width - RIGHT_PAD}" y2="{ly:.1f}" '
            'stroke="#e5e5e5"/>'
        )
        out.append(
            f'<text x="4" y="{ly + 4:.1f}" font-size="12" fill="#333" class="lane">'
            f"{escape(lane.label[: label_width // 7])}<title>{escape(lane.label)}</title></text>"
        )
    for span in spans:
        x1, x2 = x(max(span.start, start)), x(span.end or now)
        least = 2 if span.end else 6  # a revision current for seconds is still seen
        colour = COLOURS["current"] if span.end is None else COLOURS["span"]
        until = span.end.isoformat() if span.end else "now"
        out.append(
            f'<rect class="span" data-lane="{escape(span.lane)}" x="{x1:.1f}" '
            f'y="{y(span.lane) - 7:.1f}" width="{max(x2 - x1, least):.1f}" height="14" rx="3" '
            f'fill="{colour}"><title>{escape(span.lane)} active {span.start.isoformat()} '
            f"to {until}</title></rect>"
        )
    for mark in marks:
        mx, my = x(mark.at), y(mark.lane)
        title = f"<title>{escape(mark.title)}</title>"
        if mark.kind == "rollback" and mark.to_lane is not None:
            ty = y(mark.to_lane)
            base = ty - 6 if ty > my else ty + 6  # the arrow head points at the target lane
            out.append(
                f'<g class="rollback"><line x1="{mx:.1f}" y1="{my:.1f}" x2="{mx:.1f}" '
                f'y2="{ty:.1f}" stroke="{COLOURS["rollback"]}" stroke-width="2" '
                f'stroke-dasharray="4 2"/><path d="M{mx - 5:.1f},{base:.1f} '
                f'L{mx + 5:.1f},{base:.1f} L{mx:.1f},{ty:.1f} Z" '
                f'fill="{COLOURS["rollback"]}"/>{title}</g>'
            )
        elif mark.kind == "bad":
            out.append(
                f'<g class="bad"><path d="M{mx - 5:.1f},{my - 5:.1f} L{mx + 5:.1f},{my + 5:.1f} '
                f'M{mx + 5:.1f},{my - 5:.1f} L{mx - 5:.1f},{my + 5:.1f}" '
                f'stroke="{COLOURS["bad"]}" stroke-width="3"/>{title}</g>'
            )
        else:
            colour = COLOURS["alert"] if mark.kind == "alert" else COLOURS["skipped"]
            out.append(
                f'<circle class="alert" cx="{mx:.1f}" cy="{my:.1f}" r="6" fill="{colour}" '
                f'stroke="#fff" stroke-width="1.5">{title}</circle>'
            )
    axis = TOP + LANE_HEIGHT * max(len(lanes), 1) + 6
    out.append(
        f'<line x1="{label_width}" y1="{axis}" x2="{width - RIGHT_PAD}" y2="{axis}" stroke="#999"/>'
    )
    long_range = (end - start) > timedelta(days=1)
    for tick in _ticks(start, end, most=max(2, width // 150)):
        tx = x(tick)
        label = tick.strftime("%m-%d %H:%M" if long_range else "%H:%M")
        out.append(
            f'<line x1="{tx:.1f}" y1="{axis}" x2="{tx:.1f}" y2="{axis + 5}" stroke="#999"/>'
            f'<text x="{tx:.1f}" y="{axis + 18}" font-size="11" fill="#555" '
            f'text-anchor="middle">{label}</text>'
        )
    out.append(
        f'<text x="{width - RIGHT_PAD}" y="{axis + 30}" font-size="10" fill="#777" '
        'text-anchor="end">UTC; now at the right edge</text>'
    )
    out.append("</svg>")
    return "".join(out)
