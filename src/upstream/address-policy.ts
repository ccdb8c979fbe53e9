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

export function isPublicAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return false;
  let parsed = ipaddr.parse(address);
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) parsed = (parsed as ipaddr.IPv6).toIPv4Address();
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
