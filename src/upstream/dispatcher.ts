// The undici Agent every upstream request goes through: one keep-alive pool per origin, the configured
// timeouts, and the address rule on private upstreams applied to the address actually connected to, so a
// name that resolves to a private address later (DNS rebinding) is refused too (DESIGN §3.4).
import { lookup as dnsLookup } from 'node:dns';
import type { LookupAddress, LookupAllOptions, LookupOneOptions } from 'node:dns';
import { isIP } from 'node:net';
import type { buildConnector as BuildConnector } from 'undici';
import { Agent, buildConnector } from './undici.ts';
import { ALLOW_PRIVATE_HINT, isPublicAddress } from './address-policy.ts';

/** The shape of `dns.lookup` that `net.connect` calls; tests pass one that maps names to 127.0.0.1. */
export type LookupFunction = (
  hostname: string,
  options: LookupOneOptions | LookupAllOptions,
  callback: (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
) => void;

export interface UpstreamAgentOptions {
  allowPrivate: boolean;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  lookup?: LookupFunction;
}

/** A connection refused by the address rule; never retried. */
export class AddressRefusedError extends Error {
  readonly code = 'MANIFOLD_ADDRESS_REFUSED';
  constructor(message: string) {
    super(message);
    this.name = 'AddressRefusedError';
  }
}

function refusal(host: string, address: string): AddressRefusedError {
  const what = host === address ? address : `${host} resolves to ${address}, which`;
  return new AddressRefusedError(`${what} is a private, loopback or link-local address and private upstreams are not allowed; ${ALLOW_PRIVATE_HINT}`);
}

/** Wraps a lookup so that every address it answers is checked before the socket connects to it. */
export function checkedLookup(base: LookupFunction): LookupFunction {
  return (hostname, options, callback) => {
    base(hostname, options, (error, address, family) => {
      if (error) return callback(error, address, family);
      const addresses = typeof address === 'string' ? [address] : address.map((a) => a.address);
      const internal = addresses.find((a) => !isPublicAddress(a));
      if (internal !== undefined) return callback(refusal(hostname, internal) as NodeJS.ErrnoException, address, family);
      callback(null, address, family);
    });
  };
}

export function createUpstreamAgent(options: UpstreamAgentOptions): Agent {
  const baseLookup = options.lookup ?? (dnsLookup as unknown as LookupFunction);
  const lookup = options.allowPrivate ? baseLookup : checkedLookup(baseLookup);
  // HTTP/1.1 only: several connections per origin move big layers faster than one multiplexed one.
  const connectSocket = buildConnector({ timeout: options.connectTimeoutMs, lookup, allowH2: false } as BuildConnector.BuildOptions);
  const connector: BuildConnector.connector = (connectOptions, callback) => {
    const host = connectOptions.hostname.replace(/^\[|\]$/g, '');
    // An IP literal never reaches the lookup: judge it here.
    if (!options.allowPrivate && isIP(host) !== 0 && !isPublicAddress(host)) {
      callback(refusal(host, host), null);
      return;
    }
    connectSocket(connectOptions, callback);
  };
  return new Agent({
    connect: connector,
    headersTimeout: options.headersTimeoutMs,
    bodyTimeout: options.bodyTimeoutMs,
    keepAliveTimeout: 30_000,
    connections: 32,
  });
}
