// `Link` headers of the distribution spec's pagination (tags/list, referrers; RFC 8288): reading an
// upstream's `rel="next"` and writing our own.

/** The URI reference of the `rel="next"` link of a `Link` header value; null when there is none. */
export function nextLinkTarget(header: string | string[] | null | undefined): string | null {
  const values = Array.isArray(header) ? header : header ? [header] : [];
  for (const value of values) {
    // Each link is `<uri>; param; param`; a `,` inside <…> belongs to the URI.
    for (const match of value.matchAll(/<([^>]*)>([^,]*)/g)) {
      const rel = /;\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))/i.exec(match[2]);
      const relations = (rel?.[1] ?? rel?.[2] ?? '').toLowerCase().split(/\s+/);
      if (relations.includes('next')) return match[1];
    }
  }
  return null;
}

/**
 * The query of the next link of a response from `endpoint`, only when the link points at that same
 * endpoint (same origin and path, i.e. the same repository): an upstream's link is never followed
 * anywhere else, so a registry cannot steer our credentials to another path.
 */
export function nextPageQuery(header: string | string[] | null | undefined, endpoint: URL): URLSearchParams | null {
  const target = nextLinkTarget(header);
  if (target === null) return null;
  let url: URL;
  try {
    url = new URL(target, endpoint);
  } catch {
    return null;
  }
  const path = safeDecode(url.pathname);
  if (url.origin !== endpoint.origin || path === null || path !== safeDecode(endpoint.pathname)) return null;
  return url.searchParams;
}

function safeDecode(path: string): string | null {
  try {
    return decodeURIComponent(path);
  } catch {
    return null;
  }
}

/** Our own `Link` value for the next page: a path relative to this server, as Distribution sends it. */
export function nextLinkHeader(path: string, query: URLSearchParams): string {
  return `<${path}?${query.toString()}>; rel="next"`;
}
