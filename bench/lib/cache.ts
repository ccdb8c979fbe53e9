// What the benchmark needs of a pull-through cache under test, whichever it is.

export interface CacheUnderTest {
  readonly name: string;
  /** 127.0.0.1:<port>, as image references spell it. */
  readonly host: string;
  /** http://127.0.0.1:<port> */
  readonly url: string;
  /** The pid of the cache process itself (for its memory). */
  readonly pid: number;
  /** The repository a client pulls for an image of the upstream (Manifold: `<group>/<registry>/<image>`). */
  repository(image: string): string;
  /** skopeo's credentials arguments for the source. */
  skopeoCredentials(): string[];
  /** The headers a client that has logged in sends on /v2 requests for `repository` (a fresh token each call). */
  requestHeaders(repository: string): Promise<Record<string, string>>;
  /** Stops the process and starts it again on empty storage (a cold cache). */
  restartEmpty(): Promise<void>;
  stop(): Promise<void>;
}
