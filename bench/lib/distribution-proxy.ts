// CNCF Distribution in proxy mode (what `registry:2` with `proxy.remoteurl` runs): its own filesystem
// storage, the in-memory blob descriptor cache of the packaged configuration, its default logging, and
// no authentication (its default).
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { CacheUnderTest } from './cache.ts';
import { removeDirectory } from './cleanup.ts';
import { RegistryProcess } from './registry-process.ts';

export class DistributionProxy implements CacheUnderTest {
  readonly name = 'Distribution';
  readonly #workDir: string;
  readonly #remoteUrl: string;
  #registry: RegistryProcess | null = null;
  #generation = 0;
  #storage: string | null = null;

  private constructor(workDir: string, remoteUrl: string) {
    this.#workDir = workDir;
    this.#remoteUrl = remoteUrl;
  }

  /** Starts a proxy of `remoteUrl` with empty storage under `workDir`. */
  static async start(remoteUrl: string, workDir: string): Promise<DistributionProxy> {
    const proxy = new DistributionProxy(workDir, remoteUrl);
    await proxy.#startEmpty();
    return proxy;
  }

  get #running(): RegistryProcess {
    if (!this.#registry) throw new Error('Distribution is not running');
    return this.#registry;
  }

  get host(): string {
    return `127.0.0.1:${this.#running.port}`;
  }

  get url(): string {
    return this.#running.url;
  }

  get pid(): number {
    return this.#running.pid;
  }

  repository(image: string): string {
    return image;
  }

  skopeoCredentials(): string[] {
    return ['--src-no-creds'];
  }

  async requestHeaders(): Promise<Record<string, string>> {
    return {};
  }

  async restartEmpty(): Promise<void> {
    await this.stop();
    await this.#startEmpty();
  }

  async stop(): Promise<void> {
    await this.#registry?.stop();
    this.#registry = null;
    if (this.#storage) removeDirectory(this.#storage);
    this.#storage = null;
  }

  async #startEmpty(): Promise<void> {
    this.#storage = path.join(this.#workDir, `distribution-storage-${++this.#generation}`);
    mkdirSync(this.#storage, { recursive: true });
    this.#registry = await RegistryProcess.start({ workDir: this.#workDir, name: 'distribution-proxy', storage: this.#storage, proxyRemoteUrl: this.#remoteUrl });
  }
}
