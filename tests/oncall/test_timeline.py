"""The timeline picture (webhook.timeline): spans from activations, and SVG that is well-formed,
escaped and script-free whatever the labels hold."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from webhook.timeline import Lane, Mark, Span, render_svg, spans_from_activations

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


def test_each_activation_lasts_until_the_next_and_the_last_is_current() -> None:
    t = [NOW - timedelta(hours=h) for h in (3, 2, 1)]
    spans = spans_from_activations([(t[2], "rs-1"), (t[0], "rs-1"), (t[1], "rs-2")])
    assert spans == [Span("rs-1", t[0], t[1]), Span("rs-2", t[1], t[2]), Span("rs-1", t[2], None)]


def test_the_same_replicaset_activated_twice_in_a_row_is_one_span() -> None:
    t = [NOW - timedelta(hours=h) for h in (3, 2)]
    assert spans_from_activations([(t[0], "a"), (t[1], "a")]) == [Span("a", t[0], None)]


def test_svg_is_well_formed_escaped_and_has_no_script() -> None:
    evil = '<script>alert(1)</script> & "quotes"'
    svg = render_svg(
        lanes=[Lane("rs-1", evil), Lane("rs-2", "rev 2 web:2")],
        spans=[
            Span("rs-1", NOW - timedelta(hours=2), NOW - timedelta(hours=1)),
            Span("rs-2", NOW - timedelta(hours=1), None),
        ],
        marks=[
            Mark("alert", "rs-2", NOW - timedelta(minutes=30), evil),
            Mark("rollback", "rs-2", NOW - timedelta(minutes=20), "back", to_lane="rs-1"),
            Mark("bad", "rs-2", NOW - timedelta(minutes=20), "bad"),
        ],
        now=NOW,
    )
    root = ET.fromstring(svg)  # raises on malformed XML
    assert root.tag == f"{SVG}svg"
    assert not root.findall(f".//{SVG}script") and "<script>" not in svg
    titles = [t.text for t in root.iter(f"{SVG}title")]
    assert evil in titles  # the text survives, as text
    assert len(root.findall(f".//{SVG}rect")) == 2
    assert len(root.findall(f".//{SVG}g")) == 2  # the rollback arrow and the bad mark


def test_marks_before_the_window_are_left_out_and_spans_clipped() -> None:
    svg = render_svg(
        lanes=[Lane("rs-1", "rev 1")],
        spans=[Span("rs-1", NOW - timedelta(days=3), None)],
        marks=[Mark("alert", "rs-1", NOW - timedelta(days=2), "old")],
        now=NOW,
        since=NOW - timedelta(hours=1),
    )
    root = ET.fromstring(svg)
    assert not root.findall(f".//{SVG}circle")
    [rect] = root.findall(f".//{SVG}rect")
    assert float(rect.get("x", "0")) >= 150  # starts at the left edge of the plot, not before
