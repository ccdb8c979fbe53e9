// Upstreams may not point at loopback, private, link-local or otherwise internal addresses unless the
// instance allows private upstreams (DESIGN §3.4). Checked when an upstream is saved and again for the
// address actually connected to (DNS may answer differently later: rebinding).
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

/** Said with every refusal, so the operator knows which setting allows it (server and CLI read the same). */
export const ALLOW_PRIVATE_HINT = 'private upstreams are allowed by the setting upstream.allowPrivate (MANIFOLD_UPSTREAM_ALLOW_PRIVATE=true), read by the server and the CLI alike';

/** ipaddr.js ranges that are public unicast; everything else is internal. */
const PUBLIC_RANGES = new Set(['unicast']);

/**
 * IPv6 forms that carry an IPv4 address inside them, and where: a translator or tunnel may deliver
 * them to that IPv4 address, so they are judged by it. `translated` forms (IPv4-mapped, NAT64) are
 * in use with a public address (dual-stack sockets, DNS64); the others (IPv4-compatible, SIIT, 6to4,
 * Teredo) are deprecated tunnelling forms no registry is reached by, refused whatever they embed.
 */
interface EmbeddingForm {
  prefix: ipaddr.IPv6;
  bits: number;
  /** The 16-bit parts holding the IPv4 address (high, low); Teredo's client address is inverted. */
  parts: [number, number][];
  inverted?: boolean;
  translated: boolean;
}

const form = (cidr: string, parts: [number, number][], translated: boolean, inverted = false): EmbeddingForm => {
  const [prefix, bits] = ipaddr.IPv6.parseCIDR(cidr);
  return { prefix, bits, parts, translated, inverted };
};

const EMBEDDING_FORMS: EmbeddingForm[] = [
  form('::ffff:0:0/96', [[6, 7]], true), // IPv4-mapped
  form('64:ff9b::/96', [[6, 7]], true), // NAT64, well-known prefix (RFC 6052)
  form('64:ff9b:1::/48', [[6, 7]], false), // NAT64, local-use prefix (RFC 8215)
  form('::ffff:0:0:0/96', [[6, 7]], false), // SIIT (RFC 6145)
  form('::/96', [[6, 7]], false), // IPv4-compatible (RFC 4291, deprecated); :: and ::1 are judged as themselves
  form('2002::/16', [[1, 2]], false), // 6to4 (RFC 3056)
  form('2001::/32', [[2, 3]], false), // Teredo server (RFC 4380)
  form('2001::/32', [[6, 7]], false, true), // Teredo client, inverted
];

function ipv4From(address: ipaddr.IPv6, high: number, low: number, inverted: boolean): ipaddr.IPv4 {
  const mask = inverted ? 0xffff : 0;
  const h = address.parts[high] ^ mask;
  const l = address.parts[low] ^ mask;
  return new ipaddr.IPv4([h >> 8, h & 0xff, l >> 8, l & 0xff]);
}

/** The IPv4 addresses an IPv6 address embeds, with whether its form may be public at all. */
function embeddedIPv4(address: ipaddr.IPv6): { ipv4: ipaddr.IPv4[]; translated: boolean } | null {
  const range = address.range();
  if (range === 'unspecified' || range === 'loopback') return null;
  const found = EMBEDDING_FORMS.filter((f) => address.match(f.prefix, f.bits));
  if (found.length === 0) return null;
  return {
    ipv4: found.flatMap((f) => f.parts.map(([high, low]) => ipv4From(address, high, low, f.inverted ?? false))),
    translated: found.every((f) => f.translated),
  };
}

/**
 * Parses an address. IPv6 goes through the WHATWG URL parser first: ipaddr.js reads `::a.b.c.d`
 * (IPv4-compatible) as `::ffff:a.b.c.d`, the URL parser keeps it `::xxxx:yyyy` as a socket would.
 */
function parseAddress(address: string): ipaddr.IPv4 | ipaddr.IPv6 | null {
  let text = address;
  if (isIP(address) === 6) {
    try {
      text = new URL(`http://[${address}]/`).hostname.slice(1, -1);
    } catch {
      return null;
    }
  }
  return ipaddr.isValid(text) ? ipaddr.parse(text) : null;
}

export function isPublicAddress(address: string): boolean {
  const parsed = parseAddress(address);
  if (parsed === null) return false;
  if (parsed.kind() === 'ipv4') return PUBLIC_RANGES.has(parsed.range());
  const embedded = embeddedIPv4(parsed as ipaddr.IPv6);
  if (embedded) return embedded.translated && embedded.ipv4.every((ipv4) => PUBLIC_RANGES.has(ipv4.range()));
  return PUBLIC_RANGES.has(parsed.range());
}

/** Names that always mean this machine or the local network, whatever DNS says. */
function isLocalName(hostname: string): boolean {
  const name = hostname.toLowerCase().replace(/\.$/, '');
  return name === 'localhost' || name.endsWith('.localhost') || name.endsWith('.local') || name.endsWith('.internal');
}

export type AddressVerdict = { allowed: true } | { allowed: false; reason: string };

/**
 * Is this host allowed as an upstream? An IP literal is judged directly; a name is resolved and every
 * address it resolves to must be public. A name that does not resolve is allowed (it cannot be
 * reached either, and the connect-time check applies when it does resolve).
 */
export async function checkUpstreamHost(hostname: string, allowPrivate: boolean): Promise<AddressVerdict> {
  if (allowPrivate) return { allowed: true };
  const host = hostname.replace(/^\[|\]$/g, '');
  if (isIP(host)) {
    return isPublicAddress(host) ? { allowed: true } : { allowed: false, reason: `${host} is a private, loopback or link-local address` };
  }
  if (isLocalName(host)) return { allowed: false, reason: `${host} is a local name` };
  let addresses: { address: string }[];
  try {
    addresses = await lookup(host, { all: true, verbatim: true });
  } catch {
    return { allowed: true };
  }
  const internal = addresses.find((a) => !isPublicAddress(a.address));
  return internal ? { allowed: false, reason: `${host} resolves to ${internal.address}, a private, loopback or link-local address` } : { allowed: true };
}
