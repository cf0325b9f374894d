"""The egress policy's rules: allow-list matching, address checks, the private-networks setting."""
import socket

import pytest

from sandbox.egress import (
    EntryError, decide, listed, open_connection, parse_entry, parse_networks, private_networks_from_env,
)

LOOPBACK = parse_networks("127.0.0.0/8")


def test_it_matches_names_ports_and_wildcards():
    assert listed(["api.example.com"], "api.example.com", 443)
    assert listed(["api.example.com"], "API.Example.com.", 80)
    assert not listed(["api.example.com"], "api.example.com", 8443)      # no port: 80 and 443 only
    assert listed(["api.example.com:8443"], "api.example.com", 8443)
    assert not listed(["api.example.com:8443"], "api.example.com", 443)
    assert listed(["*.example.com"], "a.example.com", 443)
    assert listed(["*.example.com"], "a.b.example.com", 80)
    assert not listed(["*.example.com"], "example.com", 443)            # subdomains only
    assert not listed(["*.example.com"], "badexample.com", 443)
    assert listed(["*.example.com:8080"], "a.example.com", 8080)
    assert not listed(["api.example.com"], "api.example.com.evil.net", 443)
    assert not listed([], "api.example.com", 443)


def test_it_matches_ip_literals_in_any_spelling():
    assert listed(["[::1]:8080"], "::1", 8080)
    assert listed(["::1"], "[0:0::1]", 443)
    assert listed(["::ffff:127.0.0.1"], "::ffff:7f00:1", 80)
    assert not listed(["127.0.0.1:8080"], "127.0.0.1", 9090)


def test_it_parses_entries_strictly():
    assert parse_entry("Example.COM:8443") == ("example.com", 8443)
    assert parse_entry("[::1]:80") == ("::1", 80)
    assert parse_entry("*.example.com") == ("*.example.com", None)
    for bad in ("", "host:0", "host:99999", "host:x", "[::1", "a b", "*", "user@host", "host:80:", "a:b:c"):
        with pytest.raises(EntryError):
            parse_entry(bad)
    with pytest.raises(EntryError, match="without a scheme or a path"):
        parse_entry("https://api.example.com")
    assert not listed(["host:99999", "", "host"], "host", 99999)       # a bad entry matches nothing


@pytest.mark.parametrize("address, kind", [
    ("127.0.0.1", "loopback"), ("127.5.6.7", "loopback"), ("::1", "loopback"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"),
    ("fc00::1", "private"), ("fd12:3456::1", "private"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"), ("0.1.2.3", "this network"),
    ("100.64.0.1", "CGNAT"), ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"),
    ("::ffff:127.0.0.1", "carries 127.0.0.1, a loopback"), ("::ffff:169.254.169.254", "link-local"),
    ("::127.0.0.1", "loopback"), ("2002:7f00:1::", "loopback"), ("64:ff9b::a00:1", "private"),
])
def test_it_refuses_non_public_addresses(address, kind):
    d = decide([address], address, 443)
    assert not d.allowed and d.addresses == ()
    assert kind in d.reason and "STEPWELL_EGRESS_PRIVATE_NETWORKS" in d.reason, d.reason


def test_it_allows_public_addresses_and_connects_mapped_forms_as_ipv4():
    assert decide(["8.8.8.8"], "8.8.8.8", 443).addresses == ("8.8.8.8",)
    assert decide(["2606:4700::1"], "2606:4700::1", 443).addresses == ("2606:4700::1",)
    assert decide(["::ffff:8.8.8.8"], "::ffff:8.8.8.8", 443).addresses == ("8.8.8.8",)


def test_it_says_why_a_name_is_not_listed():
    d = decide(["api.example.com"], "evil.example", 443)
    assert not d.allowed and d.reason == "egress to evil.example:443 is not allowed by this workflow"
    assert decide(["127.0.0.1"], "127.0.0.1", 8080, LOOPBACK).reason == \
        "egress to 127.0.0.1:8080 is not allowed by this workflow"


def test_it_resolves_names_and_checks_what_they_resolve_to():
    resolved = {ai[4][0] for ai in socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)}
    d = decide(["localhost"], "localhost", 80)
    assert not d.allowed and "it resolves to" in d.reason and "loopback" in d.reason
    both = parse_networks("127.0.0.0/8,::1/128")
    d = decide(["localhost"], "localhost", 80, both)
    assert d.allowed and set(d.addresses) == resolved
    d = decide(["no-such-host.invalid"], "no-such-host.invalid", 443)
    assert not d.allowed and "does not resolve" in d.reason


def test_private_networks_let_listed_ranges_through_and_nothing_else():
    assert decide(["127.0.0.1:8080"], "127.0.0.1", 8080, LOOPBACK).addresses == ("127.0.0.1",)
    assert decide(["::ffff:127.0.0.1"], "::ffff:127.0.0.1", 443, LOOPBACK).addresses == ("127.0.0.1",)
    assert not decide(["::1"], "::1", 443, LOOPBACK).allowed
    assert not decide(["169.254.169.254"], "169.254.169.254", 80, LOOPBACK).allowed
    assert not decide(["127.0.0.2"], "127.0.0.2", 80, parse_networks("127.0.0.1/32")).allowed


def test_the_setting_is_parsed_strictly():
    assert private_networks_from_env({}) == ()
    assert [str(n) for n in private_networks_from_env(
        {"STEPWELL_EGRESS_PRIVATE_NETWORKS": " 127.0.0.0/8, fd00::/8 ,"})] == ["127.0.0.0/8", "fd00::/8"]
    for bad in ("127.0.0.0/33", "127.0.0.1/8", "localhost", "10.0.0.0/8;"):
        with pytest.raises(ValueError, match="STEPWELL_EGRESS_PRIVATE_NETWORKS"):
            private_networks_from_env({"STEPWELL_EGRESS_PRIVATE_NETWORKS": bad})


def test_open_connection_goes_only_to_checked_addresses():
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        d = decide([f"localhost:{port}"], "localhost", port, parse_networks("127.0.0.0/8,::1/128"))
        with open_connection(d, 2) as conn:
            assert conn.getpeername()[0] in ("127.0.0.1", "::1")
        with pytest.raises(PermissionError, match="loopback"):
            open_connection(decide([f"localhost:{port}"], "localhost", port), 2)
