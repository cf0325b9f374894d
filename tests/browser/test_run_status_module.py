"""The run-status model (static/designer/run-status.js) and the socket-plus-poll follower
(static/designer/follow.js), imported by a real Chromium."""
from __future__ import annotations

import pytest

from tests.browser.helpers import in_module_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


IMPORTS = """
    const rs = await import("/static/designer/run-status.js");
    const { Follower } = await import("/static/designer/follow.js");
    const s = (id, node_id, status, extra = {}) => ({id, node_id, status, attempt: 1, item_index: null, ...extra});
"""


def run(page, live_server, body):
    return in_module_page(page, live_server, IMPORTS, body)


def test_a_node_shows_its_most_telling_status(page, live_server):
    out = run(page, live_server, """
        const m = rs.nodeStatuses([
            s(1, "a", "succeeded"),
            s(2, "b", "failed"), s(3, "b", "succeeded", {attempt: 2}),              // a retry that worked
            s(4, "c", "succeeded", {item_index: 0}), s(5, "c", "running", {item_index: 1}),
            s(6, "d", "succeeded", {item_index: 0}), s(7, "d", "queued", {item_index: 1}),
            s(8, "e", "skipped"), s(9, null, "running"),
            s(10, "f", "timed_out", {item_index: 0}), s(11, "f", "failed", {item_index: 1}),
        ]);
        return Object.fromEntries(m);
    """)
    assert out == {"a": "succeeded", "b": "succeeded", "c": "running", "d": "running", "e": "skipped",
                   "f": "failed"}


def test_a_node_summary_counts_items_attempts_and_time(page, live_server):
    out = run(page, live_server, """
        return [
            rs.nodeSummary([]),
            rs.nodeSummary([s(1, "a", "succeeded", {duration_ms: 850})]),
            rs.nodeSummary([s(1, "a", "failed", {duration_ms: 5000}), s(2, "a", "timed_out", {attempt: 2, duration_ms: 12500})]),
            rs.nodeSummary([s(1, "a", "succeeded", {item_index: 0, duration_ms: 1000}),
                            s(2, "a", "succeeded", {item_index: 1, duration_ms: 250}),
                            s(3, "a", "queued", {item_index: 2})]),
        ];
    """)
    assert out == [
        {"status": "pending", "label": "Not run", "meta": ""},
        {"status": "succeeded", "label": "Succeeded", "meta": "850 ms"},
        {"status": "timed_out", "label": "Timed out", "meta": "attempt 2 · 12.5 s"},
        {"status": "running", "label": "Running", "meta": "3 items · 1.25 s"},
    ]


def test_labels_and_the_active_set(page, live_server):
    out = run(page, live_server, """
        return {active: rs.STATUSES.filter(rs.isActive), labels: rs.STATUSES.map(rs.label),
                unknown: rs.label("weird"), long: rs.formatMs(125000), none: rs.formatMs(null)};
    """)
    assert out == {"active": ["queued", "running"],
                   "labels": ["Queued", "Running", "Succeeded", "Failed", "Cancelled", "Timed out", "Skipped",
                              "Not run"],
                   "unknown": "weird", "long": "2 min 5 s", "none": ""}


def test_the_follower_polls_while_the_socket_is_away_and_stops_when_done(page, live_server):
    # The test server speaks no websocket: every connection closes, so the follower polls and
    # keeps reconnecting until there is nothing left to follow. A socket already connecting when
    # following() turns false may still close afterwards (slowly, on a loaded machine); what
    # must not happen is a new socket or a poll.
    out = run(page, live_server, """
        let polls = 0, closes = 0, opened = 0, going = true;
        const Real = window.WebSocket;
        window.WebSocket = function (...args) { opened += 1; return new Real(...args); };
        const f = new Follower("/ws/runs/1/", {
            onMessage: () => {}, poll: () => { polls += 1; }, onClose: () => { closes += 1; },
            following: () => going, pollMs: 30, retryMs: 20, maxRetryMs: 40,
        }).start();
        await new Promise((r) => setTimeout(r, 1500));
        const seen = {polls, closes, opened};
        going = false;
        for (let i = 0; i < 100 && f.socket !== null; i++) await new Promise((r) => setTimeout(r, 50));
        await new Promise((r) => setTimeout(r, 100));
        const after = {polls, opened, poller: f.poller, socket: f.socket};
        await new Promise((r) => setTimeout(r, 400));
        return {seen, after, later: {polls, opened}};
    """)
    assert out["seen"]["polls"] >= 3
    assert out["seen"]["closes"] >= 2 and out["seen"]["opened"] >= 2  # it reconnected after a close
    assert out["after"]["poller"] is None and out["after"]["socket"] is None
    assert out["later"] == {"polls": out["after"]["polls"], "opened": out["after"]["opened"]}
