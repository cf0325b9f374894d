"""The egress policy: allow-list matching, one resolution on the host, address checks.

Allow-list entries: `host` (ports 80 and 443 only), `host:port`, `*.example.com` (subdomains
only, not example.com itself; with or without a port), IP literals (`10.0.0.5`, `[::1]:8080`).
Every address a name resolves to must be a public one: loopback, private (RFC 1918, ULA),
link-local (the metadata address 169.254.169.254 included), multicast, unspecified, reserved,
shared (CGNAT 100.64.0.0/10), 0.0.0.0/8 and other special-purpose ranges are refused, also when
wrapped in IPv6 (IPv4-mapped, IPv4-compatible, 6to4, Teredo, NAT64), unless the instance lists
them in STEPWELL_EGRESS_PRIVATE_NETWORKS. One refused address refuses the name.
"""
from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass

PRIVATE_NETWORKS_ENV = "STEPWELL_EGRESS_PRIVATE_NETWORKS"
DEFAULT_PORTS = (80, 443)

_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class EntryError(ValueError):
    """An allow-list entry that is not `host`, `host:port` or `*.domain[:port]`."""


@dataclass(frozen=True)
class Decision:
    """The answer for one (host, port): `addresses` are the checked ones to connect to, in order."""
    host: str
    port: int
    allowed: bool
    reason: str = ""
    addresses: tuple[str, ...] = ()


# --- configuration -----------------------------------------------------------------------------
def parse_networks(text: str, name: str = PRIVATE_NETWORKS_ENV) -> tuple[Network, ...]:
    """Comma-separated CIDRs (`127.0.0.0/8,fd00::/8`); ValueError naming `name` on a bad one."""
    out = []
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=True))
        except ValueError as exc:
            raise ValueError(f"{name} must be comma-separated CIDRs such as 127.0.0.0/8; "
                             f"{item!r} is not one ({exc})") from None
    return tuple(out)


def private_networks_from_env(environ=None) -> tuple[Network, ...]:
    """The networks STEPWELL_EGRESS_PRIVATE_NETWORKS lets through (default: none)."""
    environ = os.environ if environ is None else environ
    return parse_networks(environ.get(PRIVATE_NETWORKS_ENV, ""))


# --- allow-list matching -----------------------------------------------------------------------
def _ip(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _normal_host(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = host.rstrip(".")
    ip = _ip(host)
    return str(ip) if ip is not None else host


def parse_entry(entry: str) -> tuple[str, int | None]:
    """(host, port or None) of an allow-list entry; the host keeps a leading `*.`.

    :raises EntryError: the entry is empty or its port is not 1-65535.
    """
    text = str(entry).strip().lower()
    if "/" in text:
        raise EntryError(f"{entry!r}: write the host name alone (e.g. api.example.com or api.example.com:8443), "
                         "without a scheme or a path")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise EntryError(f"{entry!r}: an IPv6 entry is written [address] or [address]:port")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:                       # a name, or an IPv6 address without a port
        host, port_text = text, None
    host = _normal_host(host)
    if not host or host in ("*", "*.") or any(c.isspace() or c in "/@?#[]" for c in host) or (
            ":" in host and _ip(host) is None):
        raise EntryError(f"{entry!r} is not a host name")
    port = None
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise EntryError(f"{entry!r}: the port must be a number from 1 to 65535")
        port = int(port_text)
    return host, port


def listed(allowed_hosts, host: str, port: int) -> bool:
    """True when an entry of `allowed_hosts` matches `host` and `port` (bad entries match nothing)."""
    host = _normal_host(host)
    for entry in allowed_hosts or ():
        try:
            pattern, entry_port = parse_entry(entry)
        except EntryError:
            continue
        if port not in ((entry_port,) if entry_port is not None else DEFAULT_PORTS):
            continue
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif pattern == host:
            return True
    return False


# --- address checks ----------------------------------------------------------------------------
def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (mapped, compatible, 6to4, Teredo, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if int(ip) >> 32 == 0 and int(ip) > 1:      # ::a.b.c.d, IPv4-compatible (deprecated)
        return ipaddress.IPv4Address(int(ip))
    return None


def _kind(ip: Address) -> str | None:
    """Why `ip` is not a public address ('loopback', 'private', ...), or None when it is one."""
    if ip.is_loopback:
        return "loopback"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.version == 4 and ip in _THIS_NETWORK:
        return "'this network' (0.0.0.0/8)"
    if ip.version == 4 and ip in _SHARED:
        return "shared (CGNAT 100.64.0.0/10)"
    if ip.version == 6 and ip.is_site_local:
        return "site-local"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "special-purpose"
    return None


def _wraps_v4(ip: Address) -> bool:
    """IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d) forms reach the IPv4 host."""
    return ip.version == 6 and (ip.ipv4_mapped is not None or (int(ip) >> 32 == 0 and int(ip) > 1))


def _refused_kind(ip: Address, networks) -> str | None:
    if any(ip.version == net.version and ip in net for net in networks):
        return None
    return _kind(ip)


def _refusal(ip: Address, networks) -> str | None:
    """Why connecting to `ip` is refused, or None."""
    v4 = _embedded_v4(ip) if ip.version == 6 else None
    if v4 is not None:
        kind = _refused_kind(v4, networks)
        if kind:
            return f"{ip} carries {v4}, a {kind} address"
        if _wraps_v4(ip):
            return None
    kind = _refused_kind(ip, networks)
    return f"{ip} is a {kind} address" if kind else None


def _connect_form(ip: Address) -> str:
    """Mapped and compatible IPv6 forms are connected to as the IPv4 address they name."""
    if _wraps_v4(ip):
        return str(_embedded_v4(ip))
    return str(ip)


def _resolve(host: str, port: int) -> list[Address]:
    ip = _ip(host)
    if ip is not None:
        return [ip]
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    out: list[Address] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        addr = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if addr not in out:
            out.append(addr)
    return out


def decide(allowed_hosts, host: str, port: int, private_networks=()) -> Decision:
    """Whether a workflow may connect to host:port, and the checked addresses to use.

    The name must match `allowed_hosts`; it is then resolved once, here, and every address it
    resolves to is checked. The caller connects only to `Decision.addresses`, never resolving again.
    """
    shown_host = _normal_host(host or "")
    written = (host or "").strip().lower().strip("[]")
    shown = f"[{written}]:{port}" if ":" in written else f"{written}:{port}"
    if not shown_host:
        return Decision(shown_host, port, False, "the URL has no host")
    if not isinstance(port, int) or not 1 <= port <= 65535:
        return Decision(shown_host, port, False, f"port {port!r} is not a TCP port")
    if not listed(allowed_hosts, shown_host, port):
        return Decision(shown_host, port, False, f"egress to {shown} is not allowed by this workflow")
    try:
        addresses = _resolve(shown_host, port)
    except (OSError, UnicodeError, ValueError) as exc:
        return Decision(shown_host, port, False, f"egress to {shown}: the name does not resolve ({exc})")
    if not addresses:
        return Decision(shown_host, port, False, f"egress to {shown}: the name does not resolve")
    for ip in addresses:
        why = _refusal(ip, private_networks)
        if why:
            via = "" if _ip(shown_host) is not None else f"it resolves to {ip}; "
            return Decision(shown_host, port, False,
                            f"egress to {shown} is refused: {via}{why} "
                            f"(not listed in {PRIVATE_NETWORKS_ENV})")
    return Decision(shown_host, port, True, "", tuple(dict.fromkeys(_connect_form(ip) for ip in addresses)))


def open_connection(decision: Decision, timeout: float | None) -> socket.socket:
    """A TCP connection to the first checked address that answers.

    :raises PermissionError: the decision refused the connection.
    :raises OSError: no checked address accepted it.
    """
    if not decision.allowed:
        raise PermissionError(decision.reason)
    last: OSError | None = None
    for address in decision.addresses:
        try:
            return socket.create_connection((address, decision.port), timeout=timeout)
        except OSError as exc:
            last = exc
    raise last or OSError(f"no address to connect to for {decision.host}:{decision.port}")
