// Registry hosts as clients name them (DESIGN §3.6): the `ns` of a mirror request, a mirror route's key,
// a hostname a registry claims. One spelling per host, so that `registry-1.docker.io` and `docker.io`
// find the same route.

/** The host Docker Hub's images are named by; its other names resolve to it. */
export const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'registry-1.docker.io', 'index.docker.io', 'registry.hub.docker.com']);

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const IPV6 = /^\[[0-9a-f:.]+\]$/;

/**
 * The canonical spelling of a registry host (`Docker.IO`, `registry-1.docker.io:443` → `docker.io`), or
 * null when it is not a hostname, IPv4 or bracketed IPv6 address with an optional port.
 */
export function canonicalRegistryHost(raw: string): string | null {
  const value = raw.trim().toLowerCase().replace(/\.$/, '');
  if (value === '' || value.length > 255) return null;
  const match = /^(\[[^\]]+\]|[^:]+)(?::(\d{1,5}))?$/.exec(value);
  if (!match) return null;
  const [, hostname, port] = match;
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) return null;
  if (!IPV6.test(hostname) && !hostname.split('.').every((label) => LABEL.test(label))) return null;
  if (DOCKER_HUB_ALIASES.has(hostname) && (port === undefined || port === '443')) return DOCKER_HUB;
  return port === undefined || port === '443' ? hostname : `${hostname}:${port}`;
}

/** A hostname a registry may claim: a DNS name or IP address, lower case, no port (ports are the server's). */
export function canonicalHostname(raw: string): string | null {
  const host = canonicalRegistryHost(raw);
  return host !== null && !/:\d+$/.test(host) ? host : null;
}

/**
 * Docker Hub's rule for official images: a one-component name is `library/<name>` (clients write
 * `alpine`; Docker and containerd already send `library/alpine`).
 */
export function dockerHubName(image: string): string {
  return image.includes('/') ? image : `library/${image}`;
}
