"""The browser's allow-list matcher (static/designer/egress-hosts.js) gives the answers of the
server's (sandbox/egress/policy.py), on the cases of tests/sandbox/test_egress_policy.py and on
the same inputs fed to both; and the URL finder of static/designer/editor-egress.js. Imported by a
real Chromium."""
from __future__ import annotations

import json

import pytest

from sandbox.egress import EntryError, listed, parse_entry
from tests.browser.helpers import in_module_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

IMPORTS = """
    const m = await import("/static/designer/egress-hosts.js");
    const eg = await import("/static/designer/editor-egress.js");
    const parse = (e) => { try { return m.parseEntry(e); } catch (err) { if (err instanceof m.EntryError) return "error"; throw err; } };
"""


def run(page, live_server, body):
    return in_module_page(page, live_server, IMPORTS, body)


# (allowed_hosts, host, port, listed?) — the cases of the Python tests
LISTED = [
    (["api.example.com"], "api.example.com", 443, True),
    (["api.example.com"], "API.Example.com.", 80, True),
    (["api.example.com"], "api.example.com", 8443, False),        # no port: 80 and 443 only
    (["api.example.com:8443"], "api.example.com", 8443, True),
    (["api.example.com:8443"], "api.example.com", 443, False),
    (["*.example.com"], "a.example.com", 443, True),
    (["*.example.com"], "a.b.example.com", 80, True),
    (["*.example.com"], "example.com", 443, False),               # subdomains only
    (["*.example.com"], "badexample.com", 443, False),
    (["*.example.com:8080"], "a.example.com", 8080, True),
    (["api.example.com"], "api.example.com.evil.net", 443, False),
    ([], "api.example.com", 443, False),
    (["[::1]:8080"], "::1", 8080, True),
    (["::1"], "[0:0::1]", 443, True),
    (["::ffff:127.0.0.1"], "::ffff:7f00:1", 80, True),
    (["127.0.0.1:8080"], "127.0.0.1", 9090, False),
    (["host:99999", "", "host"], "host", 99999, False),           # a bad entry matches nothing
]

ENTRIES = [
    "Example.COM:8443", "[::1]:80", "*.example.com", "", "host:0", "host:99999", "host:x", "[::1", "a b",
    "*", "user@host", "host:80:", "a:b:c", "https://api.example.com",
    # more spellings, answered by the Python module below
    "*.", "*.example.com.:8080", "[::1]", "[::1]x", "[::1]:", "::1", "[0:0::1]:8080", "1:0:0:2:0:0:0:3",
    "0:0:1:0:0:0:0:0", "::ffff:127.0.0.1", "0:0:0:0:0:ffff:7f00:1", "fe80::1%eth0", "fe80::1%", "1::2::3",
    "12345::1", ":1::2", "1::2:", "1:2:3:4:5:6:7::", "::1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9",
    "::ffff:1.2.3.256", "01.2.3.4", "1.2.3.4.", "256.1.1.1", " API.example.com. ", "host:080", "a#b", "a?b",
]


def python_parse(entry):
    try:
        return list(parse_entry(entry))
    except EntryError:
        return "error"


def test_it_matches_as_the_server_does(page, live_server):
    cases = [[hosts, host, port] for hosts, host, port, _ in LISTED]
    out = run(page, live_server, f"return {json.dumps(cases)}.map(([l, h, p]) => m.listed(l, h, p));")
    assert out == [want for *_, want in LISTED]
    assert out == [listed(hosts, host, port) for hosts, host, port, _ in LISTED]


def test_it_parses_entries_as_the_server_does(page, live_server):
    out = run(page, live_server, f"return {json.dumps(ENTRIES)}.map(parse);")
    assert out[:4] == [["example.com", 8443], ["::1", 80], ["*.example.com", None], "error"]
    assert out[4:14] == ["error"] * 10
    assert dict(zip(ENTRIES, out)) == {e: python_parse(e) for e in ENTRIES}
    msg = run(page, live_server, 'try { m.parseEntry("https://api.example.com"); } catch (e) { return e.message; }')
    assert "without a scheme or a path" in msg


def test_every_entry_against_every_host_as_the_server_does(page, live_server):
    hosts = ["api.example.com", "a.example.com", "example.com", "::1", "[::1]", "127.0.0.1", "::ffff:7f00:1",
             "0:0:1::", "1.2.3.4", "host", "A.EXAMPLE.COM."]
    ports = [80, 443, 8080, 8443]
    grid = [[e, h, p] for e in ENTRIES for h in hosts for p in ports]
    out = run(page, live_server, f"return {json.dumps(grid)}.map(([e, h, p]) => m.listed([e], h, p));")
    assert out == [listed([e], h, p) for e, h, p in grid]
    assert sum(out) > 20


def test_entries_it_suggests_and_names_it_shows(page, live_server):
    out = run(page, live_server, """
        return [m.entryFor("API.example.com", 443), m.entryFor("api.example.com", 80),
                m.entryFor("api.example.com", 8443), m.entryFor("0:0::1", 443), m.entryFor("[::1]", 9000),
                m.shown("api.example.com", 443), m.shown("::1", 8080), m.shown("[::1]", 80)];
    """)
    assert out == ["api.example.com", "api.example.com", "api.example.com:8443", "[::1]", "[::1]:9000",
                   "api.example.com:443", "[::1]:8080", "[::1]:80"]
    for entry, host, port in [(out[0], "api.example.com", 443), (out[2], "api.example.com", 8443),
                              (out[3], "::1", 443), (out[4], "::1", 9000)]:
        assert listed([entry], host, port) and not listed([entry], host, 8081)


def test_it_finds_the_urls_code_names(page, live_server):
    code = ('import urllib.request\n'
            '# "https://in.a.comment.example/"\n'
            'urllib.request.urlopen("https://api.example.com/x")\n'
            "r = requests.get(f'http://user@Data.Example.org:8080/{p}?q=1', timeout=3)\n"
            'u = f"https://{host}/x"; v = "https://{}/".format(h); s = "see https://x.example"\n'
            'doc = """\n"https://in.a.docstring.example/" """\n'
            "w = rb'http://[::1]:9000/x'; t = \"https://a.example.com:99999/\"; e = \"https://esc.example\\\"/\"\n")
    out = run(page, live_server, f"return eg.findUrls({json.dumps(code)}).map(u => [u.host, u.port, u.line, u.startColumn, u.url]);")
    assert out == [
        ["api.example.com", 443, 3, 25, "https://api.example.com/x"],
        ["data.example.org", 8080, 4, 20, "http://user@Data.Example.org:8080/{p}?q=1"],
        ["::1", 9000, 8, 8, "http://[::1]:9000/x"],
        ["esc.example", 443, 8, 71, "https://esc.example"],
    ]
    problems = run(page, live_server, f"""
        return [eg.urlProblems({json.dumps(code)}, ["api.example.com", "*.example.org:8080"], null).map(p => [p.entry, p.missing]),
                eg.urlProblems({json.dumps(code)}, ["api.example.com", "*.example.org:8080"], ["api.example.com"]).map(p => [p.entry, p.missing])];
    """)
    assert problems == [
        [["[::1]:9000", ["workflow"]], ["esc.example", ["workflow"]]],
        [["data.example.org:8080", ["step"]], ["[::1]:9000", ["workflow", "step"]], ["esc.example", ["workflow", "step"]]],
    ]
