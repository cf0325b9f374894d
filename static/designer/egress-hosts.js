// The egress allow-list in the browser: reading entries and matching a host and port against a
// list, with exactly the rules of the server's matcher (sandbox/egress/policy.py: parse_entry,
// listed). Pure functions, no DOM.
//
// Entries: `host` (ports 80 and 443 only), `host:port`, `*.example.com` (subdomains only, not
// example.com itself; with or without a port), IP literals (`10.0.0.5`, `[::1]:8080`), compared
// in their canonical spelling (`[0:0::1]` is `::1`).

export const DEFAULT_PORTS = [80, 443];

export class EntryError extends Error {}

// ---- IP literals (the spellings Python's ipaddress accepts, in its canonical form) -------------

function ipv4Int(text) {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  let n = 0;
  for (const p of parts) {
    if (!/^[0-9]{1,3}$/.test(p) || (p.length > 1 && p[0] === "0")) return null;
    const v = Number(p);
    if (v > 255) return null;
    n = n * 256 + v;
  }
  return n;
}

function ipv6Hextets(text) {
  const parts = text.split(":");
  if (parts.length < 3) return null;
  if (parts[parts.length - 1].includes(".")) {
    const v4 = ipv4Int(parts.pop());
    if (v4 === null) return null;
    parts.push(Math.floor(v4 / 65536).toString(16), (v4 % 65536).toString(16));
  }
  if (parts.length > 9) return null;
  let skip = null;
  for (let i = 1; i < parts.length - 1; i++) {
    if (!parts[i]) {
      if (skip !== null) return null;   // more than one '::'
      skip = i;
    }
  }
  let hi, lo, skipped;
  if (skip !== null) {
    hi = skip;
    lo = parts.length - skip - 1;
    if (!parts[0] && --hi) return null;                   // leading ':' only as '::'
    if (!parts[parts.length - 1] && --lo) return null;    // trailing ':' only as '::'
    skipped = 8 - (hi + lo);
    if (skipped < 1) return null;
  } else {
    if (parts.length !== 8 || !parts[0] || !parts[parts.length - 1]) return null;
    hi = parts.length; lo = 0; skipped = 0;
  }
  const hex = (p) => (/^[0-9a-fA-F]{1,4}$/.test(p) ? parseInt(p, 16) : null);
  const out = [];
  for (let i = 0; i < hi; i++) out.push(hex(parts[i]));
  for (let i = 0; i < skipped; i++) out.push(0);
  for (let i = lo; i > 0; i--) out.push(hex(parts[parts.length - i]));
  return out.includes(null) ? null : out;
}

function compress(hextets) {
  // RFC 5952: the longest run (two or more) of zero groups, the first one on a tie, becomes '::'
  let best = -1, bestLen = 0, cur = -1, curLen = 0;
  hextets.forEach((h, i) => {
    if (h === 0) {
      if (cur < 0) cur = i;
      curLen += 1;
      if (curLen > bestLen) { best = cur; bestLen = curLen; }
    } else { cur = -1; curLen = 0; }
  });
  const words = hextets.map((h) => h.toString(16));
  if (bestLen < 2) return words.join(":");
  return `${words.slice(0, best).join(":")}::${words.slice(best + bestLen).join(":")}`;
}

// The canonical spelling of an IP literal, or null when `text` is not one.
export function canonicalIp(text) {
  const v4 = ipv4Int(text);
  if (v4 !== null) return text.split(".").map(Number).join(".");
  const [addr, scope, ...more] = text.split("%");
  if (more.length || scope === "") return null;
  const v6 = ipv6Hextets(addr);
  if (v6 === null) return null;
  return compress(v6) + (scope !== undefined ? `%${scope}` : "");
}

// ---- entries and matching ----------------------------------------------------------------------

export function normalHost(host) {
  let h = String(host).trim().toLowerCase();
  if (h.startsWith("[") && h.endsWith("]")) h = h.slice(1, -1);
  h = h.replace(/\.+$/, "");
  return canonicalIp(h) ?? h;
}

// [host, port or null] of an allow-list entry; the host keeps a leading `*.`. Throws EntryError.
export function parseEntry(entry) {
  const text = String(entry).trim().toLowerCase();
  if (text.includes("/")) {
    throw new EntryError(`'${entry}': write the host name alone (e.g. api.example.com or api.example.com:8443), without a scheme or a path`);
  }
  let host, portText = null;
  if (text.startsWith("[")) {
    const end = text.indexOf("]", 1);
    const rest = end < 0 ? "" : text.slice(end + 1);
    if (end < 0 || (rest && !rest.startsWith(":"))) {
      throw new EntryError(`'${entry}': an IPv6 entry is written [address] or [address]:port`);
    }
    host = text.slice(1, end);
    portText = rest ? rest.slice(1) : null;
  } else if (text.split(":").length === 2) {
    [host, portText] = text.split(":");
  } else {
    host = text;
  }
  host = normalHost(host);
  if (!host || host === "*" || host === "*." || /[\s/@?#[\]]/.test(host) || (host.includes(":") && canonicalIp(host) === null)) {
    throw new EntryError(`'${entry}' is not a host name`);
  }
  let port = null;
  if (portText !== null) {
    if (!/^[0-9]+$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
      throw new EntryError(`'${entry}': the port must be a number from 1 to 65535`);
    }
    port = Number(portText);
  }
  return [host, port];
}

// True when an entry of `allowedHosts` matches `host` and `port` (bad entries match nothing).
export function listed(allowedHosts, host, port) {
  const h = normalHost(host);
  for (const entry of allowedHosts || []) {
    let pattern, entryPort;
    try {
      [pattern, entryPort] = parseEntry(entry);
    } catch (err) {
      if (err instanceof EntryError) continue;
      throw err;
    }
    if (!(entryPort !== null ? [entryPort] : DEFAULT_PORTS).includes(port)) continue;
    if (pattern.startsWith("*.")) {
      if (h.endsWith(pattern.slice(1)) && h.length > pattern.length - 1) return true;
    } else if (pattern === h) {
      return true;
    }
  }
  return false;
}

// How the server names host:port in its reasons (`api.example.com:443`, `[::1]:8080`).
export function shown(host, port) {
  const written = String(host).trim().toLowerCase().replace(/^[[\]]+|[[\]]+$/g, "");
  return written.includes(":") ? `[${written}]:${port}` : `${written}:${port}`;
}

// The entry that lets host:port through and no more than needed: the host, plus `:port` unless
// the port is 80 or 443 (IPv6 in brackets).
export function entryFor(host, port) {
  const h = normalHost(host);
  const name = h.includes(":") ? `[${h}]` : h;
  return DEFAULT_PORTS.includes(port) ? name : `${name}:${port}`;
}
